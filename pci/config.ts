/**
 * The configuration space of one PCI function (type 0 header, PCI 3.0 §6.1), built from a
 * {@link PciConfigSpec}. Pure state: no I/O. The session forwards region-7 accesses here and
 * listens for changes the device cares about (COMMAND, MSI-X Message Control).
 *
 * Access rules (peer input, never trusted):
 * - `read`/`write` accept any offset and length (unaligned, spanning registers) inside
 *   `[0, regionSize)`; anything else throws `ErrnoError(EINVAL)`. Zero-length accesses are
 *   rejected the same way.
 * - Each byte goes through the masks built by {@link buildLayout}: writable bits take the new
 *   value, write-1-to-clear bits clear where 1 is written, all other bits keep their value.
 * - Bytes 256 and up (only present when the spec asks for a 4096-byte region) read as zero and
 *   ignore writes: there is no extended configuration space.
 *
 * @module
 */
import type { PciConfigSpec } from "./spec.ts";
import { RecordReader } from "../protocol/record.ts";
import { buildLayout, type ConfigLayout, findBar } from "./layout.ts";
import { MsixState } from "./msix.ts";
import { checkRange } from "./range.ts";
import {
  BAR_COUNT,
  BarBits,
  CONFIG_SPACE_SIZE,
  ConfigReg,
  Msix,
  PciCommand,
  PciStatus,
  STATUS_W1C,
} from "../spec/pci.ts";

/** What changed: the COMMAND register, or MSI-X Enable/Function Mask. */
export type ConfigChange = "command" | "msix";

/** Called after a guest write (or reset) changed a watched register. */
export type ConfigChangeListener = (what: ConfigChange) => void;

/** Saved state of a config space: its 256 bytes (capabilities and BARs included). */
export type PciConfigState = {
  space: Uint8Array;
};

/** A capability's ID and the offset of its header in config space. */
export interface CapabilityOffset {
  id: number;
  offset: number;
}

/** Config space of one PCI function. */
export class PciConfigSpace {
  /** Size of the config region (region 7) to report in DEVICE_GET_REGION_INFO. */
  readonly regionSize: number;
  /**
   * MSI-X table/PBA state when the spec declares MSI-X. Owned here so that Function Mask writes
   * and {@link reset} keep it consistent with the capability.
   */
  readonly msix: MsixState | undefined;
  #spec: PciConfigSpec;
  #layout: ConfigLayout;
  #data = new Uint8Array(CONFIG_SPACE_SIZE);
  #listeners = new Set<ConfigChangeListener>();

  /** Builds the power-on config space; throws RangeError/TypeError for an invalid spec. */
  constructor(spec: PciConfigSpec) {
    this.#spec = spec;
    this.#layout = buildLayout(spec);
    this.regionSize = this.#layout.regionSize;
    this.msix = spec.msix ? new MsixState(spec.msix.vectors) : undefined;
    this.#data.set(this.#layout.image);
  }

  /** Reads `dst.length` bytes at `offset`. */
  read(offset: number, dst: Uint8Array): void {
    checkRange(offset, dst.length, this.regionSize, "config space");
    dst.fill(0);
    if (offset < CONFIG_SPACE_SIZE) {
      dst.set(this.#data.subarray(offset, Math.min(offset + dst.length, CONFIG_SPACE_SIZE)));
    }
  }

  /** Writes `src` at `offset`, byte-wise through the write and write-1-to-clear masks. */
  write(offset: number, src: Uint8Array): void {
    checkRange(offset, src.length, this.regionSize, "config space");
    const before = this.#watched();
    const { wmask, w1cmask } = this.#layout;
    const end = Math.min(offset + src.length, CONFIG_SPACE_SIZE);
    for (let o = offset; o < end; o++) {
      const v = src[o - offset];
      this.#data[o] = ((this.#data[o] & ~wmask[o]) | (v & wmask[o])) & ~(v & w1cmask[o]);
    }
    this.#afterChange(before);
  }

  /**
   * Registers `listener` for COMMAND and MSI-X control changes. It runs synchronously once the
   * whole access has been applied (getters already show the new state). Returns an unsubscribe.
   */
  onChange(listener: ConfigChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** COMMAND register value (§6.2.2). */
  get command(): number {
    return this.#u16(ConfigReg.COMMAND);
  }

  /** STATUS register value (§6.2.3). */
  get status(): number {
    return this.#u16(ConfigReg.STATUS);
  }

  /** COMMAND bit 0: the function may respond to I/O space accesses. */
  get ioEnabled(): boolean {
    return (this.command & PciCommand.IO_SPACE) !== 0;
  }

  /** COMMAND bit 1: the function may respond to memory space accesses. */
  get memoryEnabled(): boolean {
    return (this.command & PciCommand.MEMORY_SPACE) !== 0;
  }

  /** COMMAND bit 2: the function may master the bus (DMA, and MSI/MSI-X writes). */
  get busMaster(): boolean {
    return (this.command & PciCommand.BUS_MASTER) !== 0;
  }

  /** COMMAND bit 10: INTx assertion is disabled. */
  get intxDisabled(): boolean {
    return (this.command & PciCommand.INTX_DISABLE) !== 0;
  }

  /** STATUS bit 3: the function has an INTx interrupt pending (whether or not it is disabled). */
  get intxStatus(): boolean {
    return (this.status & PciStatus.INTERRUPT_STATUS) !== 0;
  }

  /**
   * Sets STATUS bit 3 to reflect the device's INTx state (§6.2.3). The line is asserted towards
   * the client only while this is set and {@link intxDisabled} is false; that is the owner's job.
   */
  setIntxStatus(asserted: boolean): void {
    if (asserted) this.#data[ConfigReg.STATUS] |= PciStatus.INTERRUPT_STATUS;
    else this.#data[ConfigReg.STATUS] &= ~PciStatus.INTERRUPT_STATUS;
  }

  /**
   * Records error conditions in STATUS (§6.2.3), e.g. `PciStatus.RECEIVED_MASTER_ABORT` after a
   * failed DMA. Only the write-1-to-clear error bits can be set; the guest clears them.
   */
  raiseStatusErrors(bits: number): void {
    const set = bits & STATUS_W1C;
    this.#data[ConfigReg.STATUS] |= set & 0xff;
    this.#data[ConfigReg.STATUS + 1] |= set >> 8;
  }

  /** MSI-X Message Control bit 15 (§6.8.2.3); false without MSI-X. */
  get msixEnabled(): boolean {
    return (this.#msixControl() & Msix.CONTROL_ENABLE) !== 0;
  }

  /** MSI-X Message Control bit 14 (§6.8.2.3); false without MSI-X. */
  get msixFunctionMasked(): boolean {
    return (this.#msixControl() & Msix.CONTROL_FUNCTION_MASK) !== 0;
  }

  /**
   * Base address the guest programmed into BAR `index` (§6.2.5.1), type bits stripped; a 64-bit
   * BAR combines both halves. 0n for unimplemented slots and the upper half of a 64-bit BAR.
   * Returned as bigint because sizing writes produce values above 2^53.
   */
  barAddress(index: number): bigint {
    if (!Number.isInteger(index) || index < 0 || index >= BAR_COUNT) {
      throw new RangeError(`BAR index ${index} not in 0..${BAR_COUNT - 1}`);
    }
    const bar = findBar(this.#spec, index);
    if (!bar) return 0n;
    const lo = BigInt(this.#u32(ConfigReg.BAR0 + 4 * index));
    if (bar.kind === "io") return lo & ~BigInt(BarBits.IO_FLAGS_MASK);
    const base = lo & ~BigInt(BarBits.MEM_FLAGS_MASK);
    if (bar.kind === "mem32") return base;
    return (BigInt(this.#u32(ConfigReg.BAR0 + 4 * (index + 1))) << 32n) | base;
  }

  /** Capabilities in list order with the offsets they were placed at (MSI-X last). */
  capabilityOffsets(): CapabilityOffset[] {
    return this.#layout.capabilities.map(({ id, offset }) => ({ id, offset }));
  }

  /**
   * Restores power-on state: BARs, COMMAND, STATUS and Interrupt Line zero, MSI-X Enable and
   * Function Mask clear, and the MSI-X table/PBA reset. Listeners hear about registers whose
   * value changed, as for a guest write.
   */
  reset(): void {
    const before = this.#watched();
    this.#data.set(this.#layout.image);
    this.msix?.reset();
    this.#afterChange(before);
  }

  /** The plain state record (a copy). MSI-X table and PBA are saved by {@link msix}. */
  save(): PciConfigState {
    return { space: this.#data.slice() };
  }

  /**
   * Loads a saved config space (untrusted: a migration stream). Only bits the guest or the
   * device can change may differ from this function's power-on image (writable, write-1-to-clear
   * and the STATUS interrupt bit): anything else means the state belongs to another function,
   * and is refused with `ErrnoError(EINVAL)` before anything changes. Listeners hear about
   * COMMAND and MSI-X control changes as after a write.
   */
  restore(raw: unknown): void {
    const r = new RecordReader(raw, "pci config");
    const space = r.bytes("space", CONFIG_SPACE_SIZE);
    r.done();
    const { image, wmask, w1cmask } = this.#layout;
    for (let o = 0; o < CONFIG_SPACE_SIZE; o++) {
      const dynamic = wmask[o] | w1cmask[o] |
        (o === ConfigReg.STATUS ? PciStatus.INTERRUPT_STATUS : 0);
      if ((space[o] & ~dynamic) !== (image[o] & ~dynamic)) {
        r.fail(
          "space",
          `byte 0x${o.toString(16)} is 0x${space[o].toString(16)}, ` +
            `its read-only bits differ from this device (0x${image[o].toString(16)})`,
        );
      }
    }
    const before = this.#watched();
    this.#data.set(space);
    this.#afterChange(before);
    this.msix?.setFunctionMask(this.msixFunctionMasked);
  }

  #u16(offset: number): number {
    return this.#data[offset] | (this.#data[offset + 1] << 8);
  }

  #u32(offset: number): number {
    return (this.#u16(offset) | (this.#u16(offset + 2) << 16)) >>> 0;
  }

  #msixControl(): number {
    const at = this.#layout.msixOffset;
    return at === undefined ? 0 : this.#u16(at + Msix.CONTROL);
  }

  #watched(): { command: number; msix: number } {
    return { command: this.command, msix: this.#msixControl() };
  }

  #afterChange(before: { command: number; msix: number }): void {
    const now = this.#watched();
    const changed: ConfigChange[] = [];
    if (now.command !== before.command) changed.push("command");
    if (now.msix !== before.msix) {
      this.msix?.setFunctionMask(this.msixFunctionMasked);
      changed.push("msix");
    }
    for (const what of changed) for (const l of [...this.#listeners]) l(what);
  }
}
