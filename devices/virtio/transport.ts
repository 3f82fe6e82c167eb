/**
 * The modern virtio-over-PCI transport (virtio 1.x §4.1) as a {@link Device}: common config,
 * ISR, device config and notification structures in one BAR, the device status state machine,
 * virtqueue lifecycle and interrupt delivery (MSI-X or INTx). Device types plug in as a
 * {@link VirtioDeviceModel}.
 *
 * @module
 */
import {
  type Device,
  type DeviceContext,
  type DeviceState,
  type GuestRegion,
  PauseCount,
} from "../device.ts";
import { Errno, ErrnoError } from "../../sys/errno.ts";
import { forwardingMemory, type GuestMemory } from "../../dma/guest_memory.ts";
import type { PciConfigSpec } from "../../pci/spec.ts";
import { commonConfig } from "./common_cfg.ts";
import { feature, FeatureBit, Isr, NO_VECTOR, Status } from "../../spec/virtio.ts";
import { msixVectors, NOTIFY_OFF_MULTIPLIER, Region, VIRTIO_BAR, virtioPciSpec } from "./layout.ts";
import type { ModelHost, VirtioDeviceModel } from "./model.ts";
import { denoTimer, type EventLoop } from "../../sys/event_loop.ts";
import { QueueRunner } from "./queue_runner.ts";
import type { RegisterFile } from "../common/regs.ts";
import { TransportState } from "./state.ts";
import { type RingIndices, SplitQueue } from "./virtqueue.ts";
import {
  parseTransport,
  ringSizes,
  saveTransport,
  type TransportRecord,
  VIRTIO_STATE_VERSION,
} from "./snapshot.ts";

/** Transport options. */
export interface VirtioPciOptions {
  /** Offer VIRTIO_F_RING_EVENT_IDX (§2.7.10). Default true. */
  eventIdx?: boolean;
  /** Offer VIRTIO_F_RING_INDIRECT_DESC (§2.7.5.3). Default true. */
  indirectDesc?: boolean;
  /** Called when the device enters DEVICE_NEEDS_RESET, with the cause. */
  onError?: (err: unknown) => void;
  /** The loop serving the device, handed to the model ({@link ModelHost.loop}). */
  loop?: EventLoop;
}

/** Transport feature bits offered for `opts`. */
function transportFeatures(opts: VirtioPciOptions): bigint {
  let f = feature(FeatureBit.VERSION_1);
  if (opts.indirectDesc ?? true) f |= feature(FeatureBit.RING_INDIRECT_DESC);
  if (opts.eventIdx ?? true) f |= feature(FeatureBit.RING_EVENT_IDX);
  return f;
}

/** A virtio PCI function around a device model. */
export class VirtioPciDevice implements Device {
  readonly type: string;
  readonly pci: PciConfigSpec;
  /** Every feature bit offered to the driver. */
  readonly offered: bigint;
  readonly #model: VirtioDeviceModel;
  readonly #host: ModelHost;
  readonly #opts: VirtioPciOptions;
  readonly #state: TransportState;
  readonly #common: RegisterFile;
  readonly #numVectors: number;
  readonly stateVersion = VIRTIO_STATE_VERSION;
  #ctx?: DeviceContext;
  #resetting?: Promise<void>;
  readonly #pauses = new PauseCount();
  /** State was loaded while paused: resume() looks at every queue. */
  #restored = false;
  /** Guest memory of the current context (re-attach after a reconnect switches it). */
  readonly #mem: GuestMemory = forwardingMemory(() => this.#context().mem);

  constructor(model: VirtioDeviceModel, opts: VirtioPciOptions = {}) {
    this.type = model.type;
    this.#model = model;
    this.#opts = opts;
    this.offered = model.features | transportFeatures(opts);
    this.#numVectors = msixVectors(model.queueSizes.length);
    this.pci = virtioPciSpec({
      deviceId: model.deviceId,
      classCode: model.classCode,
      numQueues: model.queueSizes.length,
      deviceConfigLength: model.configLength,
    });
    this.#state = new TransportState(model.queueSizes);
    this.#common = commonConfig(this.#state, {
      offered: this.offered,
      numVectors: this.#numVectors,
      writeStatus: (v) => this.#writeStatus(v),
      enableQueue: (i) => this.#enableQueue(i),
    });
    this.#host = this.#modelHost();
    model.attach?.(this.#host);
  }

  /** What the model may use: memory, features and log of the moment, the loop, its kicks. */
  #modelHost(): ModelHost {
    const loop = this.#opts.loop;
    const features = () => this.#state.negotiated;
    const log = () => this.#context().log;
    return {
      mem: this.#mem,
      get features() {
        return features();
      },
      get log() {
        return log();
      },
      loop,
      setTimer: loop ? (fn, ms) => loop.setTimeout(fn, ms) : denoTimer,
      kick: (queue) => this.#kick(queue),
      configChanged: () => this.configChanged(),
    };
  }

  /** Requests taken from the queues so far (the service status shows their rate). */
  requests = 0;

  /** Current device_status (for diagnostics and tests). */
  get status(): number {
    return this.#state.status;
  }

  /** Features in force after FEATURES_OK. */
  get negotiated(): bigint {
    return this.#state.negotiated;
  }

  /** Sets the context; may be called again (e.g. new session after a reconnect). */
  attach(ctx: DeviceContext): void {
    this.#ctx = ctx;
  }

  #context(): DeviceContext {
    if (!this.#ctx) throw new Error(`${this.type}: used before attach()`);
    return this.#ctx;
  }

  barRead(bar: number, offset: number, dst: Uint8Array): void {
    dst.fill(0);
    if (bar !== VIRTIO_BAR) return;
    if (offset < Region.COMMON + Region.COMMON_LEN) {
      this.#common.read(offset - Region.COMMON, dst);
    } else if (offset === Region.ISR) {
      dst[0] = this.#readIsr();
    } else if (offset >= Region.DEVICE && offset < Region.DEVICE + this.#model.configLength) {
      this.#readDeviceConfig(offset - Region.DEVICE, dst);
    }
  }

  barWrite(bar: number, offset: number, src: Uint8Array): void {
    if (bar !== VIRTIO_BAR || this.#resetting) return;
    if (offset < Region.COMMON + Region.COMMON_LEN) {
      this.#common.write(offset - Region.COMMON, src);
    } else if (offset >= Region.NOTIFY && offset < Region.NOTIFY + Region.NOTIFY_MAX) {
      this.#kick(Math.floor((offset - Region.NOTIFY) / NOTIFY_OFF_MULTIPLIER));
    } else if (offset >= Region.DEVICE && offset < Region.DEVICE + this.#model.configLength) {
      const len = Math.min(src.length, Region.DEVICE + this.#model.configLength - offset);
      this.#model.writeConfig(offset - Region.DEVICE, src.subarray(0, len), this.#state.negotiated);
    }
  }

  #readDeviceConfig(offset: number, dst: Uint8Array): void {
    const len = Math.min(dst.length, this.#model.configLength - offset);
    this.#model.readConfig(offset, dst.subarray(0, len));
  }

  /** ISR status read clears it and deasserts INTx (§4.1.4.5). */
  #readIsr(): number {
    const isr = this.#state.isr;
    this.#state.isr = 0;
    this.#ctx?.lowerIntx();
    return isr;
  }

  /** device_status write (§2.1, §3.1.1). */
  #writeStatus(value: number): void {
    const s = this.#state;
    if (value === 0) {
      if (s.status) this.#context().log.debug("reset by the driver (device status 0)");
      void this.#reset();
      return;
    }
    const old = s.status;
    let next = (value & ~Status.DEVICE_NEEDS_RESET) | (old & Status.DEVICE_NEEDS_RESET);
    if ((next & Status.FEATURES_OK) && !(old & Status.FEATURES_OK)) {
      if (this.#featuresAcceptable()) {
        s.negotiated = s.driverFeatures;
        this.#context().log.debug("features negotiated: 0x{features} (offered 0x{offered})", {
          features: s.negotiated.toString(16),
          offered: this.offered.toString(16),
        });
      } else {
        next &= ~Status.FEATURES_OK; // §3.1.1 step 6: the driver re-reads and sees it unset
        this.#context().log.warn("driver features 0x{features} refused (offered 0x{offered})", {
          features: s.driverFeatures.toString(16),
          offered: this.offered.toString(16),
        });
      }
    }
    if (next !== old) {
      this.#context().log.debug("device status {status}", { status: statusNames(next) });
    }
    s.status = next;
    if ((next & Status.DRIVER_OK) && !(old & Status.DRIVER_OK)) {
      for (let i = 0; i < s.queues.length; i++) this.#kick(i);
    }
  }

  /** The driver's features must be a subset of ours and include VERSION_1 (§2.2.1, §6.1). */
  #featuresAcceptable(): boolean {
    const f = this.#state.driverFeatures;
    return (f & ~this.offered) === 0n && (f & feature(FeatureBit.VERSION_1)) !== 0n;
  }

  #enableQueue(index: number): void {
    const q = this.#state.queues[index];
    if (!q || q.enabled) return;
    q.enabled = true;
    this.#context().log.debug(
      "queue {index} enabled: size {size}, desc 0x{desc}, avail 0x{avail}, used 0x{used}, " +
        "MSI-X vector {vector}",
      {
        index,
        size: q.size,
        desc: q.desc.toString(16),
        avail: q.driver.toString(16),
        used: q.device.toString(16),
        vector: q.msixVector,
      },
    );
    q.runner = this.#runner(index);
  }

  /** The processing of queue `index`; continues saved `indices`; paused while the device is. */
  #runner(
    index: number,
    indices?: RingIndices,
    broken = false,
    captured: number[] = [],
  ): QueueRunner {
    const q = this.#state.queues[index];
    const eventIdx = (this.#state.negotiated & feature(FeatureBit.RING_EVENT_IDX)) !== 0n;
    const ring = new SplitQueue(this.#mem, q, eventIdx, indices);
    const runner = new QueueRunner(
      ring,
      {
        handle: (chain) => {
          this.requests++;
          return this.#model.handle(index, chain, this.#host);
        },
        ready: this.#model.ready && (() => this.#model.ready!(index)),
        notify: () => this.#notifyQueue(index),
        fail: (err) => this.#needsReset(err),
      },
      broken,
      captured,
    );
    if (this.#pauses.paused) void runner.pause();
    return runner;
  }

  /** Queue notification (§4.1.5.2): processed only once the driver is ready. */
  #kick(index: number): void {
    const s = this.#state;
    if (this.#resetting || !(s.status & Status.DRIVER_OK)) return;
    if (s.status & Status.DEVICE_NEEDS_RESET) return;
    if (!this.#context().busMaster()) return;
    s.queues[index]?.runner?.kick();
  }

  /** Raises `vector`: MSI-X if enabled (nothing for NO_VECTOR), else INTx (§4.1.5.3, §4.1.5.4). */
  #interrupt(vector: number): void {
    const ctx = this.#context();
    if (!ctx.msixEnabled()) ctx.trigger(0);
    else if (vector !== NO_VECTOR) ctx.trigger(vector);
  }

  #notifyQueue(index: number): void {
    this.#state.isr |= Isr.QUEUE;
    this.#interrupt(this.#state.queues[index].msixVector);
  }

  #notifyConfig(): void {
    this.#state.isr |= Isr.CONFIG;
    this.#interrupt(this.#state.configMsixVector);
  }

  /** Device error: DEVICE_NEEDS_RESET plus a configuration change notification (§2.1.2). */
  #needsReset(err: unknown): void {
    const s = this.#state;
    this.#opts.onError?.(err);
    if (s.status & Status.DEVICE_NEEDS_RESET) return;
    s.status |= Status.DEVICE_NEEDS_RESET;
    if (s.status & Status.DRIVER_OK) this.#notifyConfig();
  }

  /**
   * Signals a change of the device configuration (e.g. capacity): bumps config_generation and
   * sends a configuration change notification (§2.5.1, §4.1.5.3).
   */
  configChanged(): void {
    this.#state.configGeneration++;
    if (this.#state.status & Status.DRIVER_OK) this.#notifyConfig();
  }

  /** Stops all queues, waits for their requests, then returns to power-on state (§2.4). */
  #reset(): Promise<void> {
    if (this.#resetting) return this.#resetting;
    const runners = this.#runners();
    if (runners.every((r) => r.idle)) {
      this.#finishReset();
      return Promise.resolve();
    }
    this.#resetting = Promise.all(runners.map((r) => r.stop())).then(() => this.#finishReset())
      .finally(() => (this.#resetting = undefined));
    return this.#resetting;
  }

  #finishReset(): void {
    this.#model.reset();
    this.#state.reset();
    this.#ctx?.lowerIntx();
  }

  #runners(): QueueRunner[] {
    return this.#state.queues.flatMap((q) => (q.runner ? [q.runner] : []));
  }

  reset(): Promise<void> {
    return this.#reset();
  }

  /**
   * Stops taking buffers from the avail rings; requests already taken complete and their used
   * entries (and interrupts) are published before it resolves.
   */
  pause(): Promise<void> {
    return this.#pauses.pause(async () => {
      await Promise.all(this.#runners().map((r) => r.pause()));
      await this.#resetting;
    });
  }

  /**
   * Takes buffers again: kicks that came meanwhile are acted on, and after a restore every queue
   * is looked at (the source may have left buffers in the avail rings).
   */
  resume(): void {
    this.#pauses.resume(() => {
      for (const r of this.#runners()) r.resume();
      if (!this.#restored) return;
      this.#restored = false;
      for (let i = 0; i < this.#state.queues.length; i++) this.#kick(i);
    });
  }

  save(): DeviceState {
    this.#requirePaused("save");
    const qs = this.#state.queues;
    return saveTransport(
      this.#state,
      (i) => qs[i].runner?.queue.indices(),
      (i) => qs[i].runner?.broken ?? false,
      (i) => qs[i].runner?.captured ?? [],
      this.#model.save?.() ?? null,
    );
  }

  restore(raw: unknown, version: number): void {
    this.#requirePaused("restore");
    if (version !== VIRTIO_STATE_VERSION) {
      throw new ErrnoError(Errno.ENOTSUP, `${this.type} state version ${version}`);
    }
    const rec = parseTransport(raw, {
      offered: this.offered,
      numVectors: this.#numVectors,
      queueSizes: this.#model.queueSizes,
    });
    if (this.#model.restore) this.#model.restore(rec.model);
    else if (rec.model !== null) {
      throw new ErrnoError(Errno.EINVAL, `state virtio.model: ${this.type} has no model state`);
    }
    this.#apply(rec);
    this.#restored = true;
  }

  #apply(rec: TransportRecord): void {
    const s = this.#state;
    s.deviceFeatureSelect = rec.deviceFeatureSelect;
    s.driverFeatureSelect = rec.driverFeatureSelect;
    s.driverFeatures = rec.driverFeatures;
    s.negotiated = rec.negotiated;
    s.configMsixVector = rec.configVector;
    s.status = rec.status;
    s.configGeneration = rec.configGeneration;
    s.queueSelect = rec.queueSelect;
    s.isr = rec.isr;
    rec.queues.forEach((r, i) => {
      const q = s.queues[i];
      q.size = r.size;
      q.msixVector = r.vector;
      q.enabled = r.enabled;
      q.desc = r.desc;
      q.driver = r.driver;
      q.device = r.device;
      q.runner = r.enabled ? this.#runner(i, r, r.broken, r.captured) : undefined;
    });
  }

  guestRegions(): GuestRegion[] {
    return this.#state.queues.flatMap((q, i) => {
      if (!q.runner || q.runner.broken) return [];
      const n = ringSizes(q.size);
      return [
        { addr: q.desc, len: n.desc, write: false, what: `queue ${i} descriptor table` },
        { addr: q.driver, len: n.avail, write: false, what: `queue ${i} avail ring` },
        { addr: q.device, len: n.used, write: true, what: `queue ${i} used ring` },
      ];
    });
  }

  #requirePaused(what: string): void {
    if (!this.#pauses.paused) throw new Error(`${this.type}: ${what} of a running device`);
  }

  async flush(): Promise<void> {
    await this.#model.flush?.();
  }

  close(): void {
    this.#model.close();
  }
}

/** "ACKNOWLEDGE|DRIVER|FEATURES_OK": the names of the set device status bits (§2.1). */
function statusNames(status: number): string {
  const names = Object.entries(Status).filter(([, bit]) => status & bit).map(([n]) => n);
  return names.join("|") || "0";
}
