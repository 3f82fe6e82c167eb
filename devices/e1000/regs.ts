/**
 * The 82540EM MAC register file as a table (SDM table 13-2): each register has an offset, a reset
 * value, a mask of the bits the driver may change, and optionally read-to-clear statistics
 * semantics (SDM §13.7: "all statistics registers are cleared on read"). Behaviour beyond "store
 * the masked value" (ICR read-to-clear, ICS/IMS/IMC set/clear, EEPROM bit-banging, MDIC, ring
 * tails that start DMA...) is attached by name through {@link RegisterHooks}.
 *
 * Offsets no entry covers read as 0 and ignore writes (reserved space, SDM §13.1).
 *
 * @module
 */
import { MMIO_SIZE, R, RA_ENTRIES, STATS, TABLE_WORDS } from "../../spec/e1000.ts";

export { STATS };
import type { RecordReader } from "../../protocol/record.ts";

/** How a statistics counter clears (SDM §13.7). */
export type ClearOnRead = "read" | "pair-lo" | "pair-hi";

/** One 32-bit register. */
export interface RegDef {
  readonly name: string;
  readonly offset: number;
  /** Value after power-on and CTRL.RST. */
  readonly reset: number;
  /** Bits a write changes; the others keep their value (0: read-only). */
  readonly mask: number;
  /** Statistics: cleared by reads ("pair-hi" clears the 64-bit pair, "pair-lo" nothing). */
  readonly clear?: ClearOnRead;
}

const ALL = 0xffffffff;

function reg(name: string, offset: number, mask = ALL, reset = 0): RegDef {
  return { name, offset, mask, reset };
}

function array(name: string, offset: number, count: number, mask = ALL): RegDef[] {
  return Array.from({ length: count }, (_, i) => reg(`${name}[${i}]`, offset + 4 * i, mask));
}

function stat(name: string, offset: number): RegDef {
  return { name, offset, mask: 0, reset: 0, clear: "read" };
}

function stat64(name: string, offset: number): RegDef[] {
  return [
    { name: `${name}L`, offset, mask: 0, reset: 0, clear: "pair-lo" },
    { name: `${name}H`, offset: offset + 4, mask: 0, reset: 0, clear: "pair-hi" },
  ];
}

const STATS64 = new Set<number>([STATS.GORC, STATS.GOTC, STATS.TOR, STATS.TOT]);

function statistics(): RegDef[] {
  return Object.entries(STATS).flatMap(([name, off]) =>
    STATS64.has(off) ? stat64(name, off) : [stat(name, off)]
  );
}

/** Every register the model implements, in offset order of the SDM's table. */
export function registerTable(): RegDef[] {
  return [
    reg("CTRL", R.CTRL, ALL, 0x00000001 | 0x00000200),
    reg("STATUS", R.STATUS, 0),
    reg("EECD", R.EECD),
    reg("EERD", R.EERD),
    reg("CTRL_EXT", R.CTRL_EXT, ~(1 << 13) >>> 0),
    reg("FLA", R.FLA),
    reg("MDIC", R.MDIC),
    reg("FCAL", R.FCAL),
    reg("FCAH", R.FCAH, 0xffff),
    reg("FCT", R.FCT, 0xffff),
    reg("VET", R.VET, 0xffff, 0x8100),
    reg("ICR", R.ICR),
    reg("ITR", R.ITR, 0xffff),
    reg("ICS", R.ICS),
    reg("IMS", R.IMS),
    reg("IMC", R.IMC),
    reg("RCTL", R.RCTL, 0x07ffbffe),
    reg("FCTTV", R.FCTTV, 0xffff),
    reg("TXCW", R.TXCW),
    reg("RXCW", R.RXCW, 0),
    reg("TCTL", R.TCTL, ALL, 0),
    reg("TIPG", R.TIPG, 0x3fffffff),
    reg("AIT", R.AIT, 0xffff),
    reg("LEDCTL", R.LEDCTL, ALL, 0x07068302),
    reg("PBA", R.PBA, 0xffff, 0x00100030),
    reg("FCRTL", R.FCRTL, 0x8000fff8),
    reg("FCRTH", R.FCRTH, 0xfff8),
    reg("RDFH", R.RDFH, 0x1fff),
    reg("RDFT", R.RDFT, 0x1fff),
    reg("RDFHS", R.RDFHS, 0x1fff),
    reg("RDFTS", R.RDFTS, 0x1fff),
    reg("RDFPC", R.RDFPC, 0x1fff),
    reg("RDBAL", R.RDBAL, 0xfffffff0),
    reg("RDBAH", R.RDBAH),
    reg("RDLEN", R.RDLEN, 0x000fff80),
    reg("RDH", R.RDH, 0xffff),
    reg("RDT", R.RDT, 0xffff),
    reg("RDTR", R.RDTR, 0xffff),
    reg("RXDCTL", R.RXDCTL, ALL, 0x00010000),
    reg("RADV", R.RADV, 0xffff),
    reg("RSRPD", R.RSRPD, 0xfff),
    reg("TXDMAC", R.TXDMAC, 1),
    reg("TDFH", R.TDFH, 0x1fff),
    reg("TDFT", R.TDFT, 0x1fff),
    reg("TDFHS", R.TDFHS, 0x1fff),
    reg("TDFTS", R.TDFTS, 0x1fff),
    reg("TDFPC", R.TDFPC, 0x1fff),
    reg("TDBAL", R.TDBAL, 0xfffffff0),
    reg("TDBAH", R.TDBAH),
    reg("TDLEN", R.TDLEN, 0x000fff80),
    reg("TDH", R.TDH, 0xffff),
    reg("TDT", R.TDT, 0xffff),
    reg("TIDV", R.TIDV, 0xffff),
    reg("TXDCTL", R.TXDCTL),
    reg("TADV", R.TADV, 0xffff),
    reg("TSPMT", R.TSPMT),
    ...statistics(),
    reg("RXCSUM", R.RXCSUM, 0x3ff),
    ...array("MTA", R.MTA, TABLE_WORDS),
    ...array("RA", R.RA, 2 * RA_ENTRIES),
    ...array("VFTA", R.VFTA, TABLE_WORDS),
    reg("WUC", R.WUC, 0x1f),
    reg("WUFC", R.WUFC, 0x000f00ff),
    reg("WUS", R.WUS, 0),
    reg("MANC", R.MANC),
    reg("IPAV", R.IPAV, 0x1000f),
    ...array("IP4AT", R.IP4AT, 8),
    ...array("IP6AT", R.IP6AT, 4),
    reg("WUPL", R.WUPL, 0xfff),
    ...array("WUPM", R.WUPM, 32),
    ...array("FFLT", R.FFLT, 8),
  ];
}

/** Behaviour attached to registers by offset. */
export interface RegisterHooks {
  /** Replaces the stored value on reads (may have side effects, e.g. ICR read-to-clear). */
  read?: ReadonlyMap<number, () => number>;
  /** Replaces the masked store on writes (ICS/IMS/IMC/ICR/EECD/MDIC...). */
  write?: ReadonlyMap<number, (value: number) => void>;
  /** Called after the masked value was stored (ring tails, RCTL, CTRL...). */
  written?: ReadonlyMap<number, (value: number, old: number) => void>;
}

const WORDS = MMIO_SIZE / 4;

/** The register file of one MAC. */
export class MacRegisters {
  readonly #values = new Uint32Array(WORDS);
  /** Lifetime totals of statistics counters (not cleared by reads or resets). */
  readonly #totals = new Float64Array(WORDS);
  readonly #defs: (RegDef | undefined)[] = new Array(WORDS);
  /** The table in its order (the order of saved values). */
  readonly #order: readonly RegDef[];
  #hooks: RegisterHooks = {};

  /** Builds the file from `defs` (default: the 82540EM table) at reset values. */
  constructor(defs: readonly RegDef[] = registerTable()) {
    for (const d of defs) {
      if (d.offset % 4 !== 0 || d.offset >= MMIO_SIZE) throw new RangeError(`${d.name} offset`);
      if (this.#defs[d.offset >> 2]) throw new Error(`${d.name} overlaps another register`);
      this.#defs[d.offset >> 2] = d;
    }
    this.#order = [...defs];
    this.reset();
  }

  /** Installs the device's behaviour hooks. */
  setHooks(hooks: RegisterHooks): void {
    this.#hooks = hooks;
  }

  /** Every register to its reset value (SDM §13: values after a global reset). */
  reset(): void {
    this.#values.fill(0);
    for (const d of this.#defs) if (d) this.#values[d.offset >> 2] = d.reset;
  }

  /** The definition at `offset` (dword aligned), if any. */
  def(offset: number): RegDef | undefined {
    return this.#defs[offset >> 2];
  }

  /** A guest read of the dword at `offset`, with its side effects. */
  read(offset: number): number {
    const d = this.#defs[offset >> 2];
    if (!d) return 0;
    const hook = this.#hooks.read?.get(d.offset);
    if (hook) return hook() >>> 0;
    const v = this.#values[offset >> 2];
    if (d.clear === "read") this.#values[offset >> 2] = 0;
    if (d.clear === "pair-hi") this.#values[(offset >> 2) - 1] = this.#values[offset >> 2] = 0;
    return v;
  }

  /** A guest write of the dword at `offset`. */
  write(offset: number, value: number): void {
    const d = this.#defs[offset >> 2];
    if (!d) return;
    const hook = this.#hooks.write?.get(d.offset);
    if (hook) return hook(value >>> 0);
    const old = this.#values[offset >> 2];
    const v = ((old & ~d.mask) | (value & d.mask)) >>> 0;
    this.#values[offset >> 2] = v;
    this.#hooks.written?.get(d.offset)?.(v, old);
  }

  /** The stored value, without side effects (device-internal use). */
  get(offset: number): number {
    return this.#values[offset >> 2];
  }

  /** Stores a value, bypassing masks and hooks (device-internal use). */
  set(offset: number, value: number): void {
    this.#values[offset >> 2] = value >>> 0;
  }

  /** Stored values of every register, in table order, as little-endian u32s. */
  save(): Uint8Array {
    const out = new Uint8Array(4 * this.#order.length);
    const v = new DataView(out.buffer);
    this.#order.forEach((d, i) => v.setUint32(4 * i, this.#values[d.offset >> 2], true));
    return out;
  }

  /**
   * Checks saved values (field `key` of `r`): one per register; bits a register never changes
   * must have their reset value (statistics are free). Returns the values by offset and a
   * function that stores them.
   */
  parse(r: RecordReader, key: string): { get(offset: number): number; apply(): void } {
    const bytes = r.bytes(key, 4 * this.#order.length);
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const values = new Uint32Array(WORDS);
    this.#order.forEach((d, i) => {
      const x = v.getUint32(4 * i, true);
      if (!d.clear && ((x ^ d.reset) & ~d.mask) !== 0) {
        r.fail(key, `${d.name} = 0x${x.toString(16)} changes read-only bits`);
      }
      values[d.offset >> 2] = x;
    });
    return {
      get: (offset) => values[offset >> 2],
      apply: () => this.#values.set(values),
    };
  }

  /** Everything counted at `offset` since the device was created (for logs). */
  total(offset: number): number {
    return this.#totals[offset >> 2];
  }

  /** Adds to a 32-bit statistics counter, saturating (SDM §13.7: counters stick at max). */
  count(offset: number, n = 1): void {
    const i = offset >> 2;
    this.#totals[i] += n;
    this.#values[i] = Math.min(0xffffffff, this.#values[i] + n);
  }

  /** Adds to a 64-bit statistics pair (low dword at `offset`), saturating. */
  count64(offset: number, n: number): void {
    const i = offset >> 2;
    this.#totals[i] += n;
    const total = this.#values[i] + this.#values[i + 1] * 2 ** 32 + n;
    const v = Math.min(total, Number.MAX_SAFE_INTEGER);
    this.#values[i] = v % 2 ** 32;
    this.#values[i + 1] = Math.floor(v / 2 ** 32);
  }
}
