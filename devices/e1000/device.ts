/**
 * The Intel 82540EM Gigabit Ethernet controller (PCI 8086:100e) as a vfud device: BAR0 is the
 * 128 KiB register space (SDM §13), BAR1 the IOADDR/IODATA window onto it (SDM §13.2.1, used by
 * Linux's e1000 driver for the global reset write), INTx only. Frames go to and come from a
 * {@link NetBackend}.
 *
 * @module
 */
import type { SetTimer } from "../../sys/event_loop.ts";
import type { Logger } from "@logtape/logtape";
import {
  type Device,
  type DeviceContext,
  type DeviceState,
  type GuestRegion,
  PauseCount,
} from "../device.ts";
import { Errno, ErrnoError } from "../../sys/errno.ts";
import { RecordReader } from "../../protocol/record.ts";
import type { GuestMemory } from "../../dma/guest_memory.ts";
import type { PciConfigSpec } from "../../pci/spec.ts";
import { MAX_FRAME, type NetBackend } from "../net/backend.ts";
import { logger } from "../../sys/log.ts";
import {
  CTRL,
  ICR,
  IO_SIZE,
  MDIC,
  MMIO_SIZE,
  PCI_ID,
  R,
  RAH_AV,
  RCTL,
  STATUS,
  TCTL,
} from "../../spec/e1000.ts";
import { buildEepromImage, Eeprom } from "./eeprom.ts";
import { Interrupts } from "./interrupts.ts";
import { Phy } from "./phy.ts";
import { MacRegisters, STATS } from "./regs.ts";
import { packetBuffer, RxEngine } from "./rx.ts";
import { countTx } from "./stats.ts";
import { TxEngine } from "./tx.ts";
import { dwordRead, dwordWrite } from "../common/regs.ts";

/** Options of {@link E1000}. */
export interface E1000Options {
  /** Where frames go and come from. */
  backend: NetBackend;
  /** Station address (EEPROM words 0-2, RAL0/RAH0 after reset). */
  mac: Uint8Array;
  /** Logger (default: category vfud.e1000). */
  log?: Logger;
  /** Timers of the loop that serves the device (default: Deno timers). */
  setTimer?: SetTimer;
}

/** The PCI function of an 82540EM: memory BAR0, I/O BAR1, INTA, no capabilities. */
export function e1000PciSpec(): PciConfigSpec {
  return {
    vendorId: PCI_ID.VENDOR,
    deviceId: PCI_ID.DEVICE,
    subsystemVendorId: PCI_ID.SUBSYSTEM_VENDOR,
    subsystemId: PCI_ID.SUBSYSTEM,
    revision: PCI_ID.REVISION,
    classCode: PCI_ID.CLASS,
    bars: [
      { index: 0, size: MMIO_SIZE, kind: "mem32" },
      { index: 1, size: IO_SIZE, kind: "io" },
    ],
    capabilities: [],
    interruptPin: 1,
  };
}

/** Most frames a backend holds for the NIC (one read batch) that a saved state may carry. */
const MAX_WIRE_FRAMES = 8192;

/** Version of the e1000 state record. */
export const E1000_STATE_VERSION = 1;

/** An emulated 82540EM. */
export class E1000 implements Device {
  readonly type = "e1000";
  readonly stateVersion = E1000_STATE_VERSION;
  readonly pci: PciConfigSpec = e1000PciSpec();
  /** The MAC registers (tests inspect them). */
  readonly regs = new MacRegisters();
  readonly eeprom: Eeprom;
  readonly phy = new Phy();
  readonly irq: Interrupts;
  readonly tx: TxEngine;
  readonly rx: RxEngine;
  readonly #backend: NetBackend;
  readonly #mac: Uint8Array;
  readonly #log: Logger;
  #ctx: DeviceContext | undefined;
  /** Global resets so far: a cause deferred across one is dropped. */
  #resets = 0;
  #linkUp = false;
  #ioAddr = 0;
  readonly #pauses = new PauseCount();

  constructor(opts: E1000Options) {
    this.#backend = opts.backend;
    this.#mac = opts.mac.slice();
    this.#log = opts.log ?? logger("e1000");
    this.eeprom = new Eeprom(buildEepromImage(this.#mac));
    this.irq = new Interrupts(() => this.#ctx, undefined, opts.setTimer);
    const host = {
      regs: this.regs,
      log: this.#log,
      dma: () => this.#dma(),
      raise: (c: number) => this.#raiseWhenVisible(c),
    };
    this.tx = new TxEngine({
      ...host,
      transmit: (f) => this.#transmit(f),
      congestion: () => this.#backend.congested ? this.#backend.writable() : undefined,
    });
    this.rx = new RxEngine({
      ...host,
      linkUp: () => this.#linkUp,
      resume: () => this.#backend.resumeReceive(),
    });
    this.regs.setHooks(this.#hooks());
    this.phy.onChange = () => this.#updateLink();
    this.#loadAddress();
    this.#backend.attach({
      receive: (f) => this.rx.receive(f),
      linkChanged: (up) => this.phy.setCarrier(up),
      canReceive: () => this.rx.canReceive(),
    });
    this.phy.setCarrier(this.#backend.linkUp);
  }

  /** The station address. */
  get mac(): Uint8Array {
    return this.#mac.slice();
  }

  /** MAC link state (STATUS.LU). */
  get linkUp(): boolean {
    return this.#linkUp;
  }

  attach(ctx: DeviceContext): void {
    this.#ctx = ctx;
    this.rx.kick(); // frames may have waited for guest memory
  }

  barRead(bar: number, offset: number, dst: Uint8Array): void {
    if (bar === 0) return dwordRead(offset, dst, (o) => this.regs.read(o));
    if (bar === 1) return dwordRead(offset, dst, (o) => this.#ioRead(o));
    dst.fill(0);
  }

  barWrite(bar: number, offset: number, src: Uint8Array): void {
    if (bar === 0) {
      return dwordWrite(offset, src, (o) => this.regs.get(o), (o, v) => this.regs.write(o, v));
    }
    if (bar === 1) {
      return dwordWrite(offset, src, (o) => this.#ioPeek(o), (o, v) => this.#ioWrite(o, v));
    }
  }

  /** DEVICE_RESET: MAC and PHY to power-on state; resolves when no DMA is in flight. */
  async reset(): Promise<void> {
    this.#macReset();
    this.phy.reset();
    this.#ioAddr = 0;
    this.#updateLink();
    await Promise.all([this.tx.whenIdle(), this.rx.whenIdle()]);
  }

  /**
   * Stops both units at a descriptor/frame boundary and holds interrupts and link changes;
   * resolves when no DMA is in flight.
   */
  pause(): Promise<void> {
    return this.#pauses.pause(async () => {
      this.irq.pause();
      await Promise.all([this.tx.pause(), this.rx.pause()]);
    });
  }

  resume(): void {
    this.#pauses.resume(() => {
      this.irq.resume();
      this.#updateLink();
      this.tx.resume();
      this.rx.resume();
    });
  }

  /** Registers, EEPROM and PHY interface state, interrupts, and both units' queues. */
  save(): DeviceState {
    if (!this.#pauses.paused) throw new Error("e1000: save of a running device");
    return {
      regs: this.regs.save(),
      ioAddr: this.#ioAddr,
      linkUp: this.#linkUp,
      eeprom: this.eeprom.save(),
      phy: this.phy.save(),
      irq: this.irq.save(),
      tx: this.tx.save(),
      rx: this.rx.save(),
      // Read from the wire but not taken yet (the backend held them while the NIC could not).
      wire: this.#backend.heldCopies(),
    };
  }

  restore(raw: unknown, version: number): void {
    if (!this.#pauses.paused) throw new Error("e1000: restore of a running device");
    if (version !== E1000_STATE_VERSION) {
      throw new ErrnoError(Errno.ENOTSUP, `e1000 state version ${version}`);
    }
    const r = new RecordReader(raw, "e1000");
    const regs = this.regs.parse(r, "regs");
    const ioAddr = r.uint("ioAddr", 17);
    const linkUp = r.bool("linkUp");
    const loads = [
      regs.apply,
      this.eeprom.parse(r.rec("eeprom")),
      this.phy.parse(r.rec("phy")),
      this.irq.parse(r.rec("irq")),
      this.tx.parse(r.rec("tx")),
      this.rx.parse(r.rec("rx"), packetBuffer(regs.get(R.PBA))),
      this.#parseWire(r),
    ];
    r.done();
    if (ioAddr % 4 !== 0) r.fail("ioAddr", "not dword aligned");
    for (const load of loads) load();
    this.#ioAddr = ioAddr;
    this.#linkUp = linkUp; // resume() compares it with this side's cable
  }

  #parseWire(r: RecordReader): () => void {
    const frames = r.list("wire", MAX_WIRE_FRAMES).map((f, i) => {
      if (!(f instanceof Uint8Array) || f.length === 0 || f.length > MAX_FRAME) {
        r.fail("wire", `frame ${i} is not a frame`);
      }
      return f;
    });
    return () => this.#backend.holdFrames(frames);
  }

  /** The descriptor rings of the enabled units. */
  guestRegions(): GuestRegion[] {
    const out: GuestRegion[] = [];
    const ring = (en: boolean, bal: number, bah: number, len: number, what: string) => {
      const bytes = this.regs.get(len);
      if (!en || bytes === 0) return;
      const addr = (BigInt(this.regs.get(bah)) << 32n) | BigInt(this.regs.get(bal));
      out.push({ addr, len: bytes, write: true, what });
    };
    ring((this.regs.get(R.TCTL) & TCTL.EN) !== 0, R.TDBAL, R.TDBAH, R.TDLEN, "transmit ring");
    ring((this.regs.get(R.RCTL) & RCTL.EN) !== 0, R.RDBAL, R.RDBAH, R.RDLEN, "receive ring");
    return out;
  }

  /** Frames sent and received so far (the request rate of the service status). */
  get requests(): number {
    return this.regs.total(STATS.GPTC) + this.regs.total(STATS.GPRC);
  }

  close(): void {
    const t = (o: number) => this.regs.total(o);
    this.#log.info(
      "e1000 totals: tx {tx} frames ({tso} TSO), rx {rx} frames, {missed} missed, " +
        "{nobuf} waited for descriptors, {oversize} oversize; backend paused {pauses} times",
      {
        tx: t(STATS.GPTC),
        tso: t(STATS.TSCTC),
        rx: t(STATS.GPRC),
        missed: t(STATS.MPC),
        nobuf: t(STATS.RNBC),
        oversize: t(STATS.ROC),
        pauses: this.#backend.stats.rxPauses,
      },
    );
    this.irq.close();
    this.rx.flush();
    this.#backend.close();
  }

  #dma(): GuestMemory | undefined {
    const ctx = this.#ctx;
    return ctx && ctx.busMaster() ? ctx.mem : undefined;
  }

  // I/O window (SDM §13.2.1): IOADDR at 0 selects a register, IODATA at 4 accesses it.
  #ioRead(offset: number): number {
    if (offset === 0) return this.#ioAddr;
    if (offset === 4 && this.#ioAddr < MMIO_SIZE) return this.regs.read(this.#ioAddr);
    return 0;
  }

  #ioPeek(offset: number): number {
    if (offset === 0) return this.#ioAddr;
    return offset === 4 && this.#ioAddr < MMIO_SIZE ? this.regs.get(this.#ioAddr) : 0;
  }

  #ioWrite(offset: number, value: number): void {
    if (offset === 0) this.#ioAddr = value & 0x1fffc;
    else if (offset === 4 && this.#ioAddr < MMIO_SIZE) this.regs.write(this.#ioAddr, value);
  }

  #hooks() {
    const irq = this.irq;
    const read = new Map<number, () => number>([
      [R.STATUS, () => this.#status()],
      [R.EECD, () => this.eeprom.readEecd()],
      [R.EERD, () => this.eeprom.readEerd()],
      [R.ICR, () => irq.readIcr()],
      [R.ICS, () => irq.icr],
      [R.IMS, () => irq.ims],
      [R.IMC, () => 0],
      [R.ITR, () => irq.itr],
    ]);
    const write = new Map<number, (v: number) => void>([
      [R.STATUS, () => {}],
      [R.EECD, (v) => this.eeprom.writeEecd(v)],
      [R.EERD, (v) => this.eeprom.writeEerd(v)],
      [R.MDIC, (v) => this.#mdic(v)],
      [R.ICR, (v) => irq.writeIcr(v)],
      [R.ICS, (v) => irq.raise(v)],
      [R.IMS, (v) => irq.enable(v)],
      [R.IMC, (v) => irq.disable(v)],
      [R.ITR, (v) => irq.setItr(v)],
    ]);
    const txRing = () => this.tx.reprogrammed();
    const rxRing = () => this.rx.reprogrammed();
    const written = new Map<number, (v: number, old: number) => void>([
      [R.CTRL, (v, old) => this.#ctrl(v, old)],
      [R.RCTL, (v) => this.#rctl(v)],
      [R.TCTL, (v) => (v & TCTL.EN ? this.tx.kick() : undefined)],
      [R.TDT, () => this.tx.kick()],
      [R.RDT, () => this.rx.kick()],
      [R.PBA, () => this.rx.kick()],
      ...[R.TDBAL, R.TDBAH, R.TDLEN, R.TDH].map((o) => [o, txRing] as const),
      ...[R.RDBAL, R.RDBAH, R.RDLEN, R.RDH].map((o) => [o, rxRing] as const),
    ]);
    return { read, write, written };
  }

  #status(): number {
    return STATUS.FD | STATUS.SPEED_1000 | STATUS.ASDV_1000 | (this.#linkUp ? STATUS.LU : 0);
  }

  #mdic(value: number): void {
    const out = this.phy.mdic(value);
    this.regs.set(R.MDIC, out);
    if (value & MDIC.INT_EN) this.irq.raise(ICR.MDAC);
  }

  /** CTRL (SDM §13.4.1): RST resets the MAC and self-clears; PHY_RST resets the PHY; SLU. */
  #ctrl(value: number, old: number): void {
    if (value & CTRL.RST) {
      this.#log.info("global reset (CTRL.RST)");
      this.#macReset();
      this.#updateLink();
      return;
    }
    if (value & CTRL.PHY_RST && !(old & CTRL.PHY_RST)) this.phy.reset();
    this.#updateLink();
  }

  /**
   * RCTL: disabling the receiver drops waiting frames; enabling delivers them. Other changes
   * (sizes, LPE) may let the receiver take frames again.
   */
  #rctl(value: number): void {
    if (!(value & RCTL.EN)) this.rx.flush();
    else this.rx.kick();
  }

  /**
   * Latches the causes of the data path (descriptors written back, receive overrun) once the
   * guest can see those descriptors (DeviceContext.afterWrites). Regression: with message DMA a
   * guest whose handler read ICR for an earlier interrupt found RXT0 before the descriptor's DD
   * write reached its memory, consumed the cause, found no frame, and never looked again: the
   * last ping reply of a burst was lost.
   */
  #raiseWhenVisible(causes: number): void {
    const visible = this.#ctx?.afterWrites?.();
    if (!visible) return this.irq.raise(causes);
    const epoch = this.#resets;
    void visible.then(() => {
      if (epoch === this.#resets) this.irq.raise(causes);
    });
  }

  /** Global reset (SDM §14.9): registers, EEPROM logic, interrupts, both units; RA0 reloaded. */
  #macReset(): void {
    this.#resets++;
    this.regs.reset();
    this.eeprom.reset();
    this.irq.reset();
    void this.tx.reset();
    void this.rx.reset();
    this.#loadAddress();
  }

  /** RAL0/RAH0 from the EEPROM's address words, marked valid (SDM §5.6.1). */
  #loadAddress(): void {
    const m = this.#mac;
    this.regs.set(R.RA, (m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24)) >>> 0);
    this.regs.set(R.RA + 4, (m[4] | (m[5] << 8) | RAH_AV) >>> 0);
  }

  /** STATUS.LU follows the PHY's link once CTRL.SLU is set; changes raise LSC (not paused). */
  #updateLink(): void {
    if (this.#pauses.paused) return; // resume() looks again
    const up = this.phy.linkUp && (this.regs.get(R.CTRL) & CTRL.SLU) !== 0;
    if (up === this.#linkUp) return;
    this.#linkUp = up;
    this.#log.info("link {state}", { state: up ? "up" : "down" });
    this.irq.raise(ICR.LSC);
    this.rx.kick(); // whether frames are taken or dropped changed
  }

  #transmit(frame: Uint8Array): void {
    countTx(this.regs, frame);
    const loopback = (this.regs.get(R.RCTL) & RCTL.LBM_MASK) !== 0 || this.phy.loopback;
    if (loopback) this.rx.receive(frame);
    else if (this.#linkUp) this.#backend.send(frame);
  }
}
