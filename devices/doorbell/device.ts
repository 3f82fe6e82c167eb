/**
 * The doorbell: the smallest device that uses everything a real one does, written as the example
 * of README "Adding a device" and served only to tests (its DEVICE_TYPES entry is test-only).
 *
 * One memory BAR (BAR0, 4 KiB) holds its registers at 0x000 and the MSI-X table (one vector) and
 * PBA at {@link MSIX_TABLE}/{@link MSIX_PBA}. The driver points it at a completion log in guest
 * memory (a ring of {@link LOG_ENTRY} entries) and enables it; each value written to DOORBELL is
 * a job. The device takes the queued jobs in the background, writes one log entry per job (the
 * value and its sequence number) with DMA, counts them in COUNT, sets STATUS.DONE and raises
 * its interrupt: MSI-X vector 0 when the driver enabled MSI-X, else INTx, held until the driver
 * writes 1 to STATUS.DONE. A log it cannot reach sets STATUS.ERROR and stops the device until
 * the driver enables it again; the jobs wait.
 *
 * Built from the shared parts (devices/common/): a register table ({@link RegisterFile}), the
 * background work ({@link SerialRunner}: kicked by a doorbell, paused by the lifecycle) and the
 * ring access ({@link writeEntries}). Its state is a plain record of version
 * {@link DOORBELL_STATE_VERSION}.
 *
 * @module
 */
import type { Device, DeviceContext, DeviceState, GuestRegion } from "../device.ts";
import { PauseCount } from "../device.ts";
import type { PciConfigSpec } from "../../pci/spec.ts";
import { GuestFault, isDmaPaused } from "../../dma/guest_memory.ts";
import { RecordReader } from "../../protocol/record.ts";
import { Errno, ErrnoError } from "../../sys/errno.ts";
import { register, RegisterFile } from "../common/regs.ts";
import { type RingLayout, writeEntries } from "../common/ring.ts";
import { SerialRunner } from "../common/serial_runner.ts";

/** Register offsets in BAR0 (all 32 bits wide). */
export const DoorbellReg = {
  /** Read-only {@link DOORBELL_ID}. */
  ID: 0x00,
  /** Write: queue a job with the written value. Read: jobs queued and not yet logged. */
  DOORBELL: 0x04,
  /** Read-only: jobs logged since reset (the sequence number of the next one). */
  COUNT: 0x08,
  /** {@link DoorbellStatus} bits; write 1 to clear. */
  STATUS: 0x0c,
  /** Guest address of the completion log, low and high halves. */
  LOG_LO: 0x10,
  LOG_HI: 0x14,
  /** Entries in the completion log, 0 to {@link MAX_LOG_ENTRIES}. */
  LOG_SIZE: 0x18,
  /** {@link DoorbellControl} bits. */
  CONTROL: 0x1c,
  /** Read-write, no effect: a register whose value must survive a migration. */
  SCRATCH: 0x20,
} as const;

/** STATUS bits. */
export const DoorbellStatus = {
  /** Jobs were logged since the driver last cleared it; while set, INTx is asserted. */
  DONE: 1 << 0,
  /** The log could not be written (not mapped, read-only): the device stopped. */
  ERROR: 1 << 1,
  /** A doorbell found the job queue full: its job was dropped. */
  OVERFLOW: 1 << 2,
} as const;

/** CONTROL bits. */
export const DoorbellControl = {
  /** Log jobs (needs LOG_SIZE > 0 and bus mastering). Setting it clears STATUS.ERROR. */
  ENABLE: 1 << 0,
} as const;

/** The ID register's value ("db", version 1). */
export const DOORBELL_ID = 0x6462_0001;
/** PCI identity: a vendor id reserved for tests, class "other". */
export const DOORBELL_PCI = { VENDOR: 0x1234, DEVICE: 0xdb01, CLASS: 0xff0000 } as const;
/** Bytes of one log entry: the job's value and its sequence number, u32 each (little-endian). */
export const LOG_ENTRY = 8;
/** Largest completion log. */
export const MAX_LOG_ENTRIES = 4096;
/** Jobs the device queues; a doorbell beyond that is dropped (STATUS.OVERFLOW). */
export const MAX_JOBS = 1024;
/** Size of BAR0, and where the MSI-X table and PBA lie in it. */
export const BAR_SIZE = 0x1000;
export const MSIX_TABLE = 0x800;
export const MSIX_PBA = 0xc00;
/** Version of the state record. */
export const DOORBELL_STATE_VERSION = 1;

/** The PCI function: BAR0 with registers, MSI-X table and PBA; one MSI-X vector; INTA. */
export function doorbellPciSpec(): PciConfigSpec {
  return {
    vendorId: DOORBELL_PCI.VENDOR,
    deviceId: DOORBELL_PCI.DEVICE,
    subsystemVendorId: DOORBELL_PCI.VENDOR,
    subsystemId: DOORBELL_PCI.DEVICE,
    revision: 1,
    classCode: DOORBELL_PCI.CLASS,
    bars: [{ index: 0, size: BAR_SIZE, kind: "mem32" }],
    capabilities: [],
    msix: { vectors: 1, bar: 0, tableOffset: MSIX_TABLE, pbaOffset: MSIX_PBA },
    interruptPin: 1,
  };
}

/** The registers the driver programs (all of the state besides the job queue). */
interface Regs {
  count: number;
  status: number;
  logLo: number;
  logHi: number;
  logSize: number;
  control: number;
  scratch: number;
}

const POWER_ON: Readonly<Regs> = {
  count: 0,
  status: 0,
  logLo: 0,
  logHi: 0,
  logSize: 0,
  control: 0,
  scratch: 0,
};

/** The doorbell device. */
export class Doorbell implements Device {
  readonly type = "doorbell";
  readonly stateVersion = DOORBELL_STATE_VERSION;
  readonly pci: PciConfigSpec = doorbellPciSpec();
  readonly summary = "test doorbell, 1 MSI-X vector";
  #regs: Regs = { ...POWER_ON };
  /** Values of the jobs rung and not yet logged, oldest first. */
  #jobs: number[] = [];
  #ctx: DeviceContext | undefined;
  readonly #file: RegisterFile;
  readonly #runner = new SerialRunner(() => this.#work(), (e) => this.#fault(e));
  readonly #pauses = new PauseCount();
  /** Bumped by reset: work of an older epoch publishes nothing. */
  #epoch = 0;

  constructor() {
    const r = (name: string, offset: number, read: () => number, write?: (v: number) => void) =>
      register(name, offset, 4, read, write);
    const field = (name: string, offset: number, key: "logLo" | "logHi" | "scratch") =>
      r(name, offset, () => this.#regs[key], (v) => (this.#regs[key] = v));
    this.#file = new RegisterFile([
      r("ID", DoorbellReg.ID, () => DOORBELL_ID),
      r("DOORBELL", DoorbellReg.DOORBELL, () => this.#jobs.length, (v) => this.#ring(v)),
      r("COUNT", DoorbellReg.COUNT, () => this.#regs.count),
      r("STATUS", DoorbellReg.STATUS, () => this.#regs.status, (v) => this.#clearStatus(v)),
      field("LOG_LO", DoorbellReg.LOG_LO, "logLo"),
      field("LOG_HI", DoorbellReg.LOG_HI, "logHi"),
      r("LOG_SIZE", DoorbellReg.LOG_SIZE, () => this.#regs.logSize, (v) => {
        if (v <= MAX_LOG_ENTRIES) this.#regs.logSize = v;
      }),
      r("CONTROL", DoorbellReg.CONTROL, () => this.#regs.control, (v) => this.#control(v)),
      field("SCRATCH", DoorbellReg.SCRATCH, "scratch"),
    ]);
  }

  /** Jobs logged so far (the service status shows their rate). */
  get requests(): number {
    return this.#regs.count;
  }

  attach(ctx: DeviceContext): void {
    this.#ctx = ctx;
    this.#runner.kick(); // jobs may have waited for a client
  }

  barRead(bar: number, offset: number, dst: Uint8Array): void {
    if (bar === 0) this.#file.read(offset, dst);
    else dst.fill(0);
  }

  barWrite(bar: number, offset: number, src: Uint8Array): void {
    if (bar === 0) this.#file.write(offset, src);
  }

  /** Power-on state; resolves once no log write is in flight. */
  reset(): Promise<void> {
    this.#epoch++;
    this.#regs = { ...POWER_ON };
    this.#jobs = [];
    this.#ctx?.lowerIntx();
    return this.#runner.whenIdle();
  }

  /** Stops after the log write in flight; doorbells rung meanwhile queue up. */
  pause(): Promise<void> {
    return this.#pauses.pause(() => this.#runner.pause());
  }

  resume(): void {
    this.#pauses.resume(() => {
      this.#runner.resume();
      this.#runner.kick(); // jobs restored or rung while paused
    });
  }

  save(): DeviceState {
    if (!this.#pauses.paused) throw new Error("doorbell: save of a running device");
    const jobs = new Uint8Array(4 * this.#jobs.length);
    const v = new DataView(jobs.buffer);
    this.#jobs.forEach((j, i) => v.setUint32(4 * i, j, true));
    return { ...this.#regs, jobs };
  }

  restore(raw: unknown, version: number): void {
    if (!this.#pauses.paused) throw new Error("doorbell: restore of a running device");
    if (version !== DOORBELL_STATE_VERSION) {
      throw new ErrnoError(Errno.ENOTSUP, `doorbell state version ${version}`);
    }
    const r = new RecordReader(raw, "doorbell");
    const regs: Regs = {
      count: r.uint("count", 32),
      status: r.uint("status", 32),
      logLo: r.uint("logLo", 32),
      logHi: r.uint("logHi", 32),
      logSize: r.int("logSize", 0, MAX_LOG_ENTRIES),
      control: r.uint("control", 32),
      scratch: r.uint("scratch", 32),
    };
    const bytes = r.bytes("jobs", { max: 4 * MAX_JOBS });
    r.done();
    if (regs.status & ~allBits(DoorbellStatus)) r.fail("status", "unknown bits");
    if (regs.control & ~allBits(DoorbellControl)) r.fail("control", "unknown bits");
    if (bytes.length % 4) r.fail("jobs", "not whole u32s");
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#regs = regs;
    this.#jobs = Array.from({ length: bytes.length / 4 }, (_, i) => v.getUint32(4 * i, true));
  }

  /** The completion log, while the device is enabled. */
  guestRegions(): GuestRegion[] {
    const log = this.#log();
    if (!log || !(this.#regs.control & DoorbellControl.ENABLE)) return [];
    return [{ addr: log.base, len: log.count * LOG_ENTRY, write: true, what: "completion log" }];
  }

  close(): void {}

  #ring(value: number): void {
    if (this.#jobs.length >= MAX_JOBS) {
      this.#regs.status |= DoorbellStatus.OVERFLOW;
      return;
    }
    this.#jobs.push(value);
    this.#runner.kick();
  }

  /** Write 1 to clear; clearing DONE deasserts INTx. */
  #clearStatus(value: number): void {
    this.#regs.status &= ~value;
    if (value & DoorbellStatus.DONE) this.#ctx?.lowerIntx();
  }

  #control(value: number): void {
    const enable = (value & DoorbellControl.ENABLE) !== 0;
    this.#regs.control = value & allBits(DoorbellControl);
    if (enable) {
      this.#regs.status &= ~DoorbellStatus.ERROR;
      this.#runner.kick();
    }
  }

  #log(): RingLayout | undefined {
    const { logLo, logHi, logSize } = this.#regs;
    if (logSize === 0) return undefined;
    return { base: (BigInt(logHi) << 32n) | BigInt(logLo), count: logSize, entrySize: LOG_ENTRY };
  }

  /** Logs the queued jobs, a run of entries per round, until none is left or it must stop. */
  async #work(): Promise<void> {
    const epoch = this.#epoch;
    for (;;) {
      const ctx = this.#ctx;
      const log = this.#log();
      const enabled = (this.#regs.control & DoorbellControl.ENABLE) !== 0;
      if (this.#runner.paused || !ctx?.busMaster() || !log || !enabled) return;
      const n = Math.min(this.#jobs.length, log.count);
      if (n === 0) return;
      const seq = this.#regs.count;
      const entries = new Uint8Array(n * LOG_ENTRY);
      const v = new DataView(entries.buffer);
      for (let i = 0; i < n; i++) {
        v.setUint32(i * LOG_ENTRY, this.#jobs[i], true);
        v.setUint32(i * LOG_ENTRY + 4, (seq + i) >>> 0, true);
      }
      try {
        await writeEntries(ctx.mem, log, seq % log.count, entries);
      } catch (e) {
        if (isDmaPaused(e)) return; // a migration pause: the jobs are still queued
        throw e;
      }
      if (epoch !== this.#epoch) return; // reset meanwhile: nothing to publish
      this.#jobs.splice(0, n);
      this.#regs.count = (seq + n) >>> 0;
      this.#regs.status |= DoorbellStatus.DONE;
      ctx.trigger(0);
    }
  }

  /** A log the device cannot write stops it, like a PCI master abort (anything else: a bug). */
  #fault(e: unknown): void {
    const what = e instanceof GuestFault ? "completion log unreachable" : "failed";
    this.#ctx?.log.warn(`doorbell: ${what} ({error}); stopped`, { error: String(e) });
    this.#regs.status |= DoorbellStatus.ERROR;
    this.#regs.control &= ~DoorbellControl.ENABLE;
  }
}

/** Every bit of a bit table. */
function allBits(bits: Record<string, number>): number {
  return Object.values(bits).reduce((a, b) => a | b, 0);
}
