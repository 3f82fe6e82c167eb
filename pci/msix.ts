/**
 * MSI-X table and Pending Bit Array of a function (PCI 3.0 §6.8.2), plus the per-vector mask and
 * pending state the interrupt code needs.
 *
 * Masking. A vector is masked (see {@link MsixState.isMasked}) when any of these holds:
 * - the Function Mask bit of the MSI-X capability (§6.8.2.3; mirrored here by PciConfigSpace);
 * - the client masked it with SET_IRQS ACTION_MASK (an "external" mask);
 * - its table entry's Vector Control Mask bit is set (§6.8.2.9) **and the client uses our
 *   table**. QEMU's vfio-user-pci emulates the table itself and never touches ours, so the
 *   entries keep their reset value (masked) forever; honouring them would block every vector.
 *   The table therefore only gates delivery once the client wrote to it (since construction or
 *   the last reset): a client that drives the table through the BAR gets spec behaviour, one
 *   that emulates it gets masking through SET_IRQS only.
 *
 * The device must not send a masked vector but set its pending bit instead (§6.8.2.10); when the
 * vector becomes unmasked, {@link MsixState.onUnmask} listeners run so the owner can deliver it
 * (`if (msix.isPending(v)) { msix.clearPending(v); signal(v); }`).
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";
import { checkRange } from "./range.ts";
import { RecordReader } from "../protocol/record.ts";
import { Msix, pbaSize } from "../spec/pci.ts";

/**
 * Writable bits of one 16-byte table entry (§6.8.2.6-§6.8.2.9): Message Address bits 31:2
 * (bits 1:0 read as 0 for DWORD alignment), Message Upper Address, Message Data, and only the
 * Mask bit (bit 0) of Vector Control.
 */
// deno-fmt-ignore
const ENTRY_WMASK = Uint8Array.of(
  0xfc, 0xff, 0xff, 0xff, // Message Address
  0xff, 0xff, 0xff, 0xff, // Message Upper Address
  0xff, 0xff, 0xff, 0xff, // Message Data
  0x01, 0x00, 0x00, 0x00, // Vector Control: Mask bit
);

/** Byte offset of Vector Control within an entry. */
const VECTOR_CONTROL = 12;

/** Saved MSI-X state: table, pending bits, and whether the client drives the table. */
export type MsixSavedState = {
  table: Uint8Array;
  pba: Uint8Array;
  tableInUse: boolean;
};

/** Called with a vector number when the vector goes from masked to unmasked. */
export type UnmaskListener = (vector: number) => void;

/** MSI-X table, PBA and per-vector interrupt state for `vectors` vectors. */
export class MsixState {
  /** Number of vectors (table entries). */
  readonly vectors: number;
  /** Table size in bytes (16 per vector). */
  readonly tableSize: number;
  /** PBA size in bytes (whole QWORDs). */
  readonly pbaSize: number;
  #table: Uint8Array;
  #pba: Uint8Array;
  #external: Uint8Array;
  #functionMasked = false;
  #tableInUse = false;
  #listeners = new Set<UnmaskListener>();

  /** Creates the state for `vectors` (1..2048) vectors, in the reset state. */
  constructor(vectors: number) {
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > Msix.MAX_VECTORS) {
      throw new RangeError(`MSI-X: vector count ${vectors} not in 1..${Msix.MAX_VECTORS}`);
    }
    this.vectors = vectors;
    this.tableSize = vectors * Msix.ENTRY_SIZE;
    this.pbaSize = pbaSize(vectors);
    this.#table = new Uint8Array(this.tableSize);
    this.#pba = new Uint8Array(this.pbaSize);
    this.#external = new Uint8Array(vectors);
    this.reset();
  }

  /** Reads table bytes at `offset` (relative to the table start). */
  tableRead(offset: number, dst: Uint8Array): void {
    checkRange(offset, dst.length, this.tableSize, "MSI-X table");
    dst.set(this.#table.subarray(offset, offset + dst.length));
  }

  /**
   * Writes table bytes at `offset` through the per-entry write mask. Any byte access is accepted
   * (§6.8.2 leaves non-DWORD accesses undefined; byte-wise is a safe definition). Marks the
   * table as used by the client (see the module docs).
   */
  tableWrite(offset: number, src: Uint8Array): void {
    checkRange(offset, src.length, this.tableSize, "MSI-X table");
    const first = Math.floor(offset / Msix.ENTRY_SIZE);
    const last = Math.floor((offset + src.length - 1) / Msix.ENTRY_SIZE);
    const before = this.#maskSnapshot(first, last);
    for (let i = 0; i < src.length; i++) {
      const o = offset + i;
      const m = ENTRY_WMASK[o % Msix.ENTRY_SIZE];
      this.#table[o] = (this.#table[o] & ~m) | (src[i] & m);
    }
    this.#tableInUse = true;
    this.#notifyUnmasked(first, before);
  }

  /** Reads PBA bytes at `offset` (relative to the PBA start); bits past the last vector are 0. */
  pbaRead(offset: number, dst: Uint8Array): void {
    checkRange(offset, dst.length, this.pbaSize, "MSI-X PBA");
    dst.set(this.#pba.subarray(offset, offset + dst.length));
  }

  /** PBA writes are checked and ignored: Pending Bits are read-only (§6.8.2.10). */
  pbaWrite(offset: number, src: Uint8Array): void {
    checkRange(offset, src.length, this.pbaSize, "MSI-X PBA");
  }

  /** True when the client has written the table since construction or the last reset. */
  get tableInUse(): boolean {
    return this.#tableInUse;
  }

  /** Current Function Mask (mirrors the MSI-X capability's Message Control bit 14). */
  get functionMasked(): boolean {
    return this.#functionMasked;
  }

  /** Sets the Function Mask; called by PciConfigSpace when the guest writes Message Control. */
  setFunctionMask(masked: boolean): void {
    const before = this.#maskSnapshot(0, this.vectors - 1);
    this.#functionMasked = masked;
    this.#notifyUnmasked(0, before);
  }

  /** True when vector `v` must not be sent (see the module docs for the three sources). */
  isMasked(v: number): boolean {
    this.#checkVector(v);
    return this.#functionMasked || this.#external[v] !== 0 ||
      (this.#tableInUse && (this.#table[v * Msix.ENTRY_SIZE + VECTOR_CONTROL] & 1) !== 0);
  }

  /** Masks or unmasks vector `v` on behalf of the client (SET_IRQS ACTION_MASK/UNMASK). */
  setExternalMask(v: number, masked: boolean): void {
    this.#checkVector(v);
    const before = this.#maskSnapshot(v, v);
    this.#external[v] = masked ? 1 : 0;
    this.#notifyUnmasked(v, before);
  }

  /** Drops every external mask (e.g. the client disabled MSI-X or disconnected). */
  clearExternalMasks(): void {
    const before = this.#maskSnapshot(0, this.vectors - 1);
    this.#external.fill(0);
    this.#notifyUnmasked(0, before);
  }

  /** Sets the pending bit of `v` (the device wanted to send it while masked). */
  setPending(v: number): void {
    this.#checkVector(v);
    this.#pba[v >> 3] |= 1 << (v & 7);
  }

  /** Clears the pending bit of `v`. */
  clearPending(v: number): void {
    this.#checkVector(v);
    this.#pba[v >> 3] &= ~(1 << (v & 7));
  }

  /** True when `v` has its pending bit set. */
  isPending(v: number): boolean {
    this.#checkVector(v);
    return (this.#pba[v >> 3] & (1 << (v & 7))) !== 0;
  }

  /**
   * Registers `listener` for masked → unmasked transitions; it runs synchronously after the
   * state change. Returns a function that unregisters it.
   */
  onUnmask(listener: UnmaskListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Power-on state (§6.8.2.9: Mask bits are 1 after reset): entries zeroed and masked, PBA clear,
   * Function Mask clear, table no longer in use. External masks are client state and stay (see
   * {@link clearExternalMasks}). Emits no unmask notifications (nothing is pending).
   */
  reset(): void {
    this.#table.fill(0);
    for (let v = 0; v < this.vectors; v++) this.#table[v * Msix.ENTRY_SIZE + VECTOR_CONTROL] = 1;
    this.#pba.fill(0);
    this.#functionMasked = false;
    this.#tableInUse = false;
  }

  /**
   * The plain state record (copies). External masks are the client's (it sets them again) and
   * the Function Mask lives in config space.
   */
  save(): MsixSavedState {
    return { table: this.#table.slice(), pba: this.#pba.slice(), tableInUse: this.#tableInUse };
  }

  /**
   * Loads saved state (untrusted): sizes must match this function's vector count, read-only
   * table bits and PBA bits past the last vector must be zero; else `ErrnoError(EINVAL)`
   * and nothing changes. No unmask notifications: pending vectors are delivered when the
   * owner next looks ({@link pendingVectors}).
   */
  restore(raw: unknown): void {
    const r = new RecordReader(raw, "msix");
    const table = r.bytes("table", this.tableSize);
    const pba = r.bytes("pba", this.pbaSize);
    const tableInUse = r.bool("tableInUse");
    r.done();
    for (let o = 0; o < table.length; o++) {
      if (table[o] & ~ENTRY_WMASK[o % Msix.ENTRY_SIZE]) {
        r.fail("table", `read-only bits set at byte ${o}`);
      }
    }
    for (let v = this.vectors; v < pba.length * 8; v++) {
      if (pba[v >> 3] & (1 << (v & 7))) {
        r.fail("pba", `pending bit of vector ${v} (of ${this.vectors})`);
      }
    }
    this.#table.set(table);
    this.#pba.set(pba);
    this.#tableInUse = tableInUse;
  }

  /** Vectors whose pending bit is set. */
  pendingVectors(): number[] {
    const out: number[] = [];
    for (let v = 0; v < this.vectors; v++) if (this.isPending(v)) out.push(v);
    return out;
  }

  #checkVector(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v >= this.vectors) {
      throw new ErrnoError(Errno.EINVAL, `MSI-X vector ${v} not in 0..${this.vectors - 1}`);
    }
  }

  #maskSnapshot(first: number, last: number): boolean[] {
    const out: boolean[] = [];
    for (let v = first; v <= last; v++) out.push(this.isMasked(v));
    return out;
  }

  #notifyUnmasked(first: number, before: boolean[]): void {
    const unmasked = before.flatMap((
      was,
      i,
    ) => (was && !this.isMasked(first + i) ? [first + i] : []));
    for (const v of unmasked) for (const l of [...this.#listeners]) l(v);
  }
}
