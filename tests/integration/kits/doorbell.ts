/**
 * The doorbell (devices/doorbell/, the example device) in the lifecycle suite, and its driver: a
 * completion log in guest RAM, MSI-X or INTx through the client library's interrupt wiring; the
 * workload rings doorbells and checks that each job is logged exactly once, in order, with its
 * sequence number, whichever server logged it.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  DeviceInterrupts,
  GuestArena,
  type GuestRam,
  type InterruptMode,
  le,
  PciConfig,
  pollUntil,
  type VfioUserClient,
} from "../../../client/mod.ts";
import { PciCommand } from "../../../spec/pci.ts";
import {
  DoorbellControl,
  DoorbellReg,
  DoorbellStatus,
  LOG_ENTRY,
} from "../../../devices/doorbell/device.ts";
import type { LifecycleKit, Workload } from "./kit.ts";

/** A driver of the doorbell over the client library. */
export class DoorbellDriver {
  client: VfioUserClient;
  readonly irqs: DeviceInterrupts;
  readonly log: Uint8Array;
  readonly logAddr: bigint;
  readonly logSize: number;

  private constructor(
    client: VfioUserClient,
    irqs: DeviceInterrupts,
    arena: GuestArena,
    logSize: number,
  ) {
    this.client = client;
    this.irqs = irqs;
    this.logSize = logSize;
    this.logAddr = arena.alloc(logSize * LOG_ENTRY, 64);
    this.log = arena.view(this.logAddr, logSize * LOG_ENTRY);
    this.log.fill(0xff);
  }

  /** Bus mastering, interrupts (`mode`), a log of `logSize` entries, enabled. */
  static async create(
    client: VfioUserClient,
    arena: GuestArena,
    mode: InterruptMode,
    logSize = 64,
  ): Promise<DoorbellDriver> {
    await new PciConfig(client).updateCommand(PciCommand.MEMORY_SPACE | PciCommand.BUS_MASTER);
    const d = new DoorbellDriver(
      client,
      await DeviceInterrupts.setup(client, mode),
      arena,
      logSize,
    );
    await d.write(DoorbellReg.LOG_LO, Number(d.logAddr & 0xffffffffn));
    await d.write(DoorbellReg.LOG_HI, Number(d.logAddr >> 32n));
    await d.write(DoorbellReg.LOG_SIZE, logSize);
    await d.write(DoorbellReg.CONTROL, DoorbellControl.ENABLE);
    return d;
  }

  /** Reads a register. */
  async read(reg: number): Promise<number> {
    return le.u32(await this.client.regionRead(0, reg, 4));
  }

  /** Writes a register (posted, like a guest's MMIO write, when `posted`). */
  write(reg: number, value: number, posted = false): Promise<void> {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    return this.client.regionWrite(0, reg, b, { noReply: posted });
  }

  /** Rings the doorbell once per value, posted. */
  async ring(values: readonly number[]): Promise<void> {
    for (const v of values) await this.write(DoorbellReg.DOORBELL, v, true);
  }

  /** The log entry of sequence number `seq`: [value, seq]. */
  entry(seq: number): [number, number] {
    const at = (seq % this.logSize) * LOG_ENTRY;
    return [le.u32(this.log, at), le.u32(this.log, at + 4)];
  }

  /**
   * Waits (bounded) until COUNT reaches `count`, taking interrupts as they come: with INTx each
   * is acknowledged (STATUS.DONE cleared, then the line unmasked). Returns the interrupts seen.
   */
  async waitCount(count: number): Promise<number> {
    let irqs = 0;
    await pollUntil(async () => {
      const fired = await this.irqs.wait(0, 50);
      if (fired > 0n) {
        irqs++;
        if (this.irqs.mode === "intx") {
          await this.write(DoorbellReg.STATUS, DoorbellStatus.DONE);
          await this.irqs.unmaskIntx();
        }
      }
      return (await this.read(DoorbellReg.COUNT)) >= count ? true : undefined;
    }, `doorbell COUNT ${count}`);
    return irqs;
  }

  /** The device moved to another server: same RAM and log, interrupts wired there. */
  async moveTo(client: VfioUserClient): Promise<void> {
    this.client = client;
    await this.irqs.moveTo(client);
  }

  close(): void {
    this.irqs.close();
  }
}

/** Job values are their sequence number plus this (so a value is never mistaken for a seq). */
const VALUE_BASE = 0x5000_0000;

class DoorbellWorkload implements Workload {
  readonly #d: DoorbellDriver;
  #rung = 0;
  #checked = 0;

  constructor(d: DoorbellDriver) {
    this.#d = d;
  }

  async start(n: number): Promise<void> {
    const values = Array.from({ length: n }, (_, i) => VALUE_BASE + this.#rung + i);
    this.#rung += n;
    await this.#d.ring(values);
  }

  async finish(): Promise<void> {
    await this.#d.waitCount(this.#rung);
    assert.equal(await this.#d.read(DoorbellReg.COUNT), this.#rung, "each job logged once");
    const status = await this.#d.read(DoorbellReg.STATUS);
    assert.equal(status & ~DoorbellStatus.DONE, 0, `STATUS 0x${status.toString(16)}`);
    const from = Math.max(this.#checked, this.#rung - this.#d.logSize);
    for (let seq = from; seq < this.#rung; seq++) {
      assert.deepEqual(this.#d.entry(seq), [VALUE_BASE + seq, seq], `log entry ${seq}`);
    }
    this.#checked = this.#rung;
  }

  moveTo(client: VfioUserClient): Promise<void> {
    return this.#d.moveTo(client);
  }

  close(): void {
    this.#d.close();
  }
}

/** The doorbell kit: nothing shared but guest RAM. */
export const doorbellKit: LifecycleKit = {
  setup: () => Promise.resolve({ [Symbol.asyncDispose]: () => Promise.resolve() }),
  device: () => "doorbell",
  async open(client: VfioUserClient, ram: GuestRam) {
    const d = await DoorbellDriver.create(client, new GuestArena(0n, ram.bytes), "msix");
    return new DoorbellWorkload(d);
  },
};
