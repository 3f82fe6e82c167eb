/**
 * The 82540EM's integrated Marvell 88E1011 copper PHY at MDIO address 1, reached through MDIC
 * (SDM §13.4.7, PHY registers §13.5 "PHY Registers"). Link follows the backend's carrier, the
 * PHY's power-down bit and auto-negotiation (which completes at once: the "wire" is virtual and
 * always 1000BASE-T full duplex).
 *
 * @module
 */
import { MDIC } from "../../spec/e1000.ts";
import type { RecordReader, RecordValue } from "../../protocol/record.ts";

/** PHY register numbers (IEEE 802.3 clause 22 and Marvell specific, SDM table 13-63). */
export const PHY = {
  CTRL: 0,
  STATUS: 1,
  ID1: 2,
  ID2: 3,
  AUTONEG_ADV: 4,
  LP_ABILITY: 5,
  AUTONEG_EXP: 6,
  NEXT_PAGE_TX: 7,
  LP_NEXT_PAGE: 8,
  CTRL_1000T: 9,
  STATUS_1000T: 10,
  EXT_STATUS: 15,
  M88_SPEC_CTRL: 16,
  M88_SPEC_STATUS: 17,
  M88_INT_ENABLE: 18,
  M88_INT_STATUS: 19,
  M88_EXT_SPEC_CTRL: 20,
  M88_RX_ERR_COUNTER: 21,
} as const;

/** PHY Control (BMCR) bits. */
export const BMCR = {
  SPEED_MSB: 1 << 6,
  FULL_DUPLEX: 1 << 8,
  RESTART_AN: 1 << 9,
  ISOLATE: 1 << 10,
  POWER_DOWN: 1 << 11,
  AN_ENABLE: 1 << 12,
  LOOPBACK: 1 << 14,
  RESET: 1 << 15,
} as const;

/** PHY Status (BMSR) bits. */
export const BMSR = {
  EXT_CAPS: 1 << 0,
  LINK: 1 << 2,
  AN_ABLE: 1 << 3,
  AN_COMPLETE: 1 << 5,
  PREAMBLE_SUPPRESS: 1 << 6,
  EXT_STATUS: 1 << 8,
  T10_HD: 1 << 11,
  T10_FD: 1 << 12,
  TX100_HD: 1 << 13,
  TX100_FD: 1 << 14,
} as const;

/** The PHY's MDIO address on the 82540EM. */
export const PHY_ADDR = 1;
/** 88E1011 identifier: OUI 0x005043 → ID1 0x0141, ID2 model 0x02 revision 0 (SDM §13.5.3). */
export const PHY_ID1 = 0x0141;
/** See {@link PHY_ID1}. */
export const PHY_ID2 = 0x0c20;

const BMSR_STATIC = BMSR.EXT_CAPS | BMSR.AN_ABLE | BMSR.PREAMBLE_SUPPRESS | BMSR.EXT_STATUS |
  BMSR.T10_HD | BMSR.T10_FD | BMSR.TX100_HD | BMSR.TX100_FD;

/** Power-on values of the writable registers. */
const RESET_VALUES: ReadonlyMap<number, number> = new Map([
  [PHY.CTRL, BMCR.AN_ENABLE | BMCR.FULL_DUPLEX | BMCR.SPEED_MSB],
  // 10/100 half and full duplex, IEEE 802.3 selector.
  [PHY.AUTONEG_ADV, 0x01e1],
  // Advertise 1000BASE-T full and half duplex.
  [PHY.CTRL_1000T, 0x0300],
  [PHY.M88_SPEC_CTRL, 0x0068],
  [PHY.M88_EXT_SPEC_CTRL, 0x0d60],
]);

/** Read-only registers: value given the link state. */
const STATUS_REGS: ReadonlyMap<number, (up: boolean) => number> = new Map([
  [PHY.STATUS, (up: boolean) => BMSR_STATIC | (up ? BMSR.LINK | BMSR.AN_COMPLETE : 0)],
  [PHY.ID1, () => PHY_ID1],
  [PHY.ID2, () => PHY_ID2],
  // Partner: acknowledge, 10/100 half/full, 802.3.
  [PHY.LP_ABILITY, (up: boolean) => (up ? 0x41e1 : 0)],
  // Partner is auto-negotiation able.
  [PHY.AUTONEG_EXP, (up: boolean) => (up ? 0x0001 : 0)],
  // Local and remote receiver OK, partner 1000BASE-T full and half duplex.
  [PHY.STATUS_1000T, (up: boolean) => (up ? 0x3c00 : 0)],
  // 1000BASE-T full and half duplex capable.
  [PHY.EXT_STATUS, () => 0x3000],
  // Speed 1000, full duplex, speed/duplex resolved, real-time link.
  [PHY.M88_SPEC_STATUS, (up: boolean) => (up ? 0x8000 | 0x2000 | 0x0800 | 0x0400 : 0)],
  [PHY.M88_INT_STATUS, () => 0],
  [PHY.M88_RX_ERR_COUNTER, () => 0],
]);

/** The PHY's registers and link state. */
export class Phy {
  readonly #regs = new Uint16Array(32);
  #carrier = false;
  /** Called when {@link linkUp} may have changed. */
  onChange: () => void = () => {};

  constructor() {
    this.reset();
  }

  /** Power-on values (also after BMCR.RESET and CTRL.PHY_RST). */
  reset(): void {
    this.#regs.fill(0);
    for (const [r, v] of RESET_VALUES) this.#regs[r] = v;
  }

  /** The registers (the carrier is the backend's, not state). */
  save(): RecordValue {
    return { regs: new Uint8Array(this.#regs.buffer.slice(0)) };
  }

  /** Checks saved registers; returns the function that loads them. */
  parse(r: RecordReader): () => void {
    const bytes = r.bytes("regs", 64);
    r.done();
    const regs = new Uint16Array(bytes.slice().buffer);
    if (regs[PHY.CTRL] & (BMCR.RESET | BMCR.RESTART_AN)) {
      r.fail("regs", "self-clearing BMCR bits set");
    }
    return () => this.#regs.set(regs);
  }

  /** Sets whether the cable has a partner (the backend's link). */
  setCarrier(up: boolean): void {
    if (this.#carrier === up) return;
    this.#carrier = up;
    this.onChange();
  }

  /** PHY link: carrier, powered up, and auto-negotiation done (instant here). */
  get linkUp(): boolean {
    return this.#carrier && !(this.#regs[PHY.CTRL] & BMCR.POWER_DOWN);
  }

  /** BMCR.LOOPBACK: transmitted frames come back to the receiver. */
  get loopback(): boolean {
    return (this.#regs[PHY.CTRL] & BMCR.LOOPBACK) !== 0;
  }

  /** Reads register `r` (0-31). */
  read(r: number): number {
    const status = STATUS_REGS.get(r);
    return status ? status(this.linkUp) : this.#regs[r & 31];
  }

  /** Writes register `r`; RESET and RESTART_AN self-clear; read-only registers ignore it. */
  write(r: number, value: number): void {
    if (STATUS_REGS.has(r)) return;
    if (r === PHY.CTRL) return this.#writeCtrl(value);
    this.#regs[r & 31] = value & 0xffff;
  }

  #writeCtrl(value: number): void {
    const before = this.linkUp;
    if (value & BMCR.RESET) this.reset();
    this.#regs[PHY.CTRL] = value & ~(BMCR.RESET | BMCR.RESTART_AN) & 0xffff;
    if (this.linkUp !== before) this.onChange();
  }

  /**
   * Executes an MDIC write (SDM §13.4.7): a read or write of the PHY at address 1; any other
   * address, or an opcode that is neither, completes with ERROR. Returns the new MDIC value
   * (READY set, data filled in for reads).
   */
  mdic(value: number): number {
    const addr = (value & MDIC.PHY_MASK) >>> MDIC.PHY_SHIFT;
    const r = (value & MDIC.REG_MASK) >>> MDIC.REG_SHIFT;
    const op = value & (MDIC.OP_READ | MDIC.OP_WRITE);
    let out = value & ~(MDIC.READY | MDIC.ERROR);
    if (addr !== PHY_ADDR || op === 0 || op === (MDIC.OP_READ | MDIC.OP_WRITE)) {
      out |= MDIC.ERROR;
    } else if (op === MDIC.OP_READ) {
      out = (out & ~MDIC.DATA_MASK) | this.read(r);
    } else {
      this.write(r, value & MDIC.DATA_MASK);
    }
    return (out | MDIC.READY) >>> 0;
  }
}
