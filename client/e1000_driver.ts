/**
 * A tiny 82540EM (e1000) driver for tests, speaking to the NIC only through the vfio-user client,
 * the way Linux's e1000 driver programs it (8254x SDM §14): bus mastering on, link up (CTRL.SLU),
 * a receive ring of 2 KiB buffers (RCTL: enabled, broadcast accept, CRC stripped) and a transmit
 * ring of legacy descriptors (EOP | IFCS | RS), all in guest RAM, with descriptor-done polling
 * (bounded waits). It can hold off re-arming receive buffers (so frames wait in the NIC) and move
 * to another server after a migration without re-initialising.
 *
 * The register numbers come from spec/e1000.ts, shared with the device model.
 *
 * @module
 */
import type { VfioUserClient } from "./client.ts";
import type { GuestArena } from "./guest_arena.ts";
import { PciConfig } from "./pci.ts";
import { PciCommand } from "../spec/pci.ts";
import { pollUntil } from "./util.ts";
import {
  CTRL,
  DESC_SIZE,
  R,
  RCTL,
  RXD_STA,
  STATUS,
  TCTL,
  TXD_CMD,
  TXD_STA,
} from "../spec/e1000.ts";

const DESC = DESC_SIZE;
/** Receive buffer size (RCTL.BSIZE 0: 2048 bytes) and the transmit buffers' size. */
const BUF = 2048;
const BAR0 = 0;

/** Options of {@link E1000Driver.create}. */
export interface E1000DriverOptions {
  /** Guest memory for rings and buffers (must be DMA-mapped). */
  arena: GuestArena;
  /** Receive descriptors (a multiple of 8). Default 32. */
  rxCount?: number;
  /** Transmit descriptors (a multiple of 8). Default 64. */
  txCount?: number;
  /** Bound of every wait. Default the client's. */
  timeoutMs?: number;
}

/** The driver of one e1000 function. */
export class E1000Driver {
  /** The connection to the NIC (another one after {@link moveTo}). */
  client: VfioUserClient;
  readonly arena: GuestArena;
  readonly timeoutMs: number;
  readonly rxCount: number;
  readonly txCount: number;
  #rx = 0n;
  #tx = 0n;
  #bufs: bigint[] = [];
  #txBufs: bigint[] = [];
  /** Next receive descriptor to look at. */
  #rxNext = 0;
  /** Next transmit descriptor to fill, and the oldest not yet reclaimed. */
  #txTail = 0;
  #txClean = 0;
  /** Re-arm receive descriptors after taking their frames (else frames wait in the NIC). */
  rearm = true;

  private constructor(client: VfioUserClient, opts: E1000DriverOptions) {
    this.client = client;
    this.arena = opts.arena;
    this.timeoutMs = opts.timeoutMs ?? client.timeoutMs;
    this.rxCount = opts.rxCount ?? 32;
    this.txCount = opts.txCount ?? 64;
  }

  /** Brings the NIC up: bus mastering, link, both rings. The DMA maps must be in place. */
  static async create(client: VfioUserClient, opts: E1000DriverOptions): Promise<E1000Driver> {
    const d = new E1000Driver(client, opts);
    await d.#init();
    return d;
  }

  /** Reads a register. */
  async read(offset: number): Promise<number> {
    const b = await this.client.regionRead(BAR0, offset, 4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  /** Writes a register (posted when `posted`, like QEMU's MMIO writes). */
  write(offset: number, value: number, posted = false): Promise<void> {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    return this.client.regionWrite(BAR0, offset, b, { noReply: posted });
  }

  async #init(): Promise<void> {
    await new PciConfig(this.client).updateCommand(
      PciCommand.MEMORY_SPACE | PciCommand.BUS_MASTER,
      0,
    );
    const a = this.arena;
    this.#rx = a.alloc(this.rxCount * DESC, 128);
    this.#tx = a.alloc(this.txCount * DESC, 128);
    a.view(this.#rx, this.rxCount * DESC).fill(0);
    a.view(this.#tx, this.txCount * DESC).fill(0);
    this.#bufs = Array.from({ length: this.rxCount }, () => a.alloc(BUF, 64));
    this.#txBufs = Array.from({ length: this.txCount }, () => a.alloc(BUF, 64));
    this.#bufs.forEach((b, i) => this.#desc(this.#rx, i).setBigUint64(0, b, true));
    await this.write(R.IMC, 0xffffffff);
    await this.write(R.CTRL, (await this.read(R.CTRL)) | CTRL.SLU);
    await this.write(R.RDBAL, Number(this.#rx & 0xffffffffn));
    await this.write(R.RDBAH, Number(this.#rx >> 32n));
    await this.write(R.RDLEN, this.rxCount * DESC);
    await this.write(R.RDH, 0);
    await this.write(R.RDT, this.rxCount - 1);
    await this.write(R.RCTL, RCTL.EN | RCTL.BAM | RCTL.SECRC);
    await this.write(R.TDBAL, Number(this.#tx & 0xffffffffn));
    await this.write(R.TDBAH, Number(this.#tx >> 32n));
    await this.write(R.TDLEN, this.txCount * DESC);
    await this.write(R.TDH, 0);
    await this.write(R.TDT, 0);
    await this.write(R.TCTL, TCTL.EN | TCTL.PSP);
  }

  #desc(ring: bigint, i: number): DataView {
    const v = this.arena.view(ring + BigInt(i * DESC), DESC);
    return new DataView(v.buffer, v.byteOffset, DESC);
  }

  /** Waits (bounded) until STATUS reports link up. */
  async waitLink(): Promise<void> {
    await pollUntil(
      async () => ((await this.read(R.STATUS)) & STATUS.LU ? true : undefined),
      "e1000 link up",
      this.timeoutMs,
    );
  }

  /** Transmit descriptors the NIC has not completed yet. */
  get txPending(): number {
    return (this.#txTail - this.#txClean + this.txCount) % this.txCount;
  }

  /**
   * Places `frames` in the transmit ring (reclaiming completed descriptors first) and writes TDT
   * once (posted unless `posted` is false). Throws when the ring has no room.
   */
  async send(frames: readonly Uint8Array[], posted = true): Promise<void> {
    this.reclaim();
    if (this.txPending + frames.length > this.txCount - 1) {
      throw new RangeError(`transmit ring full (${this.txPending} pending)`);
    }
    for (const f of frames) {
      if (f.length > BUF) throw new RangeError(`frame of ${f.length} bytes`);
      const i = this.#txTail;
      this.arena.view(this.#txBufs[i], f.length).set(f);
      const d = this.#desc(this.#tx, i);
      d.setBigUint64(0, this.#txBufs[i], true);
      d.setUint16(8, f.length, true);
      d.setUint8(11, TXD_CMD.EOP | TXD_CMD.IFCS | TXD_CMD.RS);
      d.setUint8(12, 0);
      this.#txTail = (i + 1) % this.txCount;
    }
    await this.write(R.TDT, this.#txTail, posted);
  }

  /** Reclaims transmit descriptors the NIC marked done; returns how many. */
  reclaim(): number {
    let n = 0;
    while (
      this.#txClean !== this.#txTail &&
      this.#desc(this.#tx, this.#txClean).getUint8(12) & TXD_STA.DD
    ) {
      this.#txClean = (this.#txClean + 1) % this.txCount;
      n++;
    }
    return n;
  }

  /** Waits (bounded) until every transmit descriptor is done. */
  async waitTx(): Promise<void> {
    await pollUntil(
      () => (this.reclaim() >= 0 && this.txPending === 0 ? true : undefined),
      "e1000 transmit",
      this.timeoutMs,
    );
  }

  /**
   * Takes the frames the NIC wrote (descriptors with DD, in order); re-arms their descriptors
   * (RDT) when {@link rearm} is set.
   */
  async receive(): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    let taken = 0;
    for (;;) {
      const d = this.#desc(this.#rx, this.#rxNext);
      if (!(d.getUint8(12) & RXD_STA.DD)) break;
      const len = d.getUint16(8, true);
      out.push(this.arena.view(this.#bufs[this.#rxNext], len).slice());
      d.setUint8(12, 0);
      this.#rxNext = (this.#rxNext + 1) % this.rxCount;
      taken++;
    }
    if (taken && this.rearm) await this.giveBack();
    return out;
  }

  /** Returns every taken receive descriptor to the NIC (RDT just behind the next to look at). */
  async giveBack(): Promise<void> {
    await this.write(R.RDT, (this.#rxNext + this.rxCount - 1) % this.rxCount);
  }

  /** Receives until `until(all frames so far)` holds (bounded). */
  async receiveUntil(
    until: (frames: Uint8Array[]) => boolean,
    what: string,
  ): Promise<Uint8Array[]> {
    const all: Uint8Array[] = [];
    await pollUntil(
      async () => {
        all.push(...(await this.receive()));
        return until(all) ? true : undefined;
      },
      what,
      this.timeoutMs,
    );
    return all;
  }

  /** The NIC moved to another server (live migration): registers go to `client` from now on. */
  moveTo(client: VfioUserClient): void {
    this.client = client;
  }
}
