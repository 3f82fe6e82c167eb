/**
 * The runtime around one device model: PCI config space, BAR routing (MSI-X table and PBA are
 * the framework's, the rest the device's), interrupts, and the guest memory of whichever client
 * is connected. It outlives client sessions: device state survives a reconnect (spec,
 * "Reconnection").
 *
 * It is also what migrates ({@link MigrationTarget}): the device model with its config space,
 * MSI-X state and interrupt lines, paused and resumed as one. Pauses nest (migration STOP, a
 * DEVICE_RESET, the gap between two clients); the device runs again after the last one ends.
 *
 * @module
 */
import type { Device, DeviceContext } from "../devices/device.ts";
import {
  DEFAULT_MAX_INCOMING,
  MigrationController,
  type MigrationTarget,
} from "../migration/controller.ts";
import { type Section, SectionId } from "../migration/stream.ts";
import type { RecordValue } from "../protocol/record.ts";
import {
  absentMemory,
  DmaPaused,
  forwardingMemory,
  type GuestMemory,
} from "../dma/guest_memory.ts";
import { BarMap, type RegionInfo, regionInfos } from "../pci/bar_map.ts";
import { RegionIndex } from "../protocol/region_info.ts";
import { PciConfigSpace } from "../pci/config.ts";
import { Errno, VfioUserError } from "../protocol/errors.ts";
import type { EventLoop } from "../sys/event_loop.ts";
import { IrqController } from "./irqs.ts";
import { BouncePool } from "../dma/bounce_pool.ts";
import { logger } from "../sys/log.ts";

/** Guest memory of a client, whose posted writes can be waited for. */
export interface ClientMemory extends GuestMemory {
  /** Resolves when every posted write is acknowledged; undefined when none is pending. */
  settled(): Promise<void> | undefined;
  /** Whether [addr, addr+length) is DMA-mapped with the access `write` needs. */
  covers(addr: bigint, length: number, write: boolean): boolean;
  /** Makes every wait for the client fail until the returned function is called. */
  fence(reason: Error): () => void;
}

/** What devices reach while no client is connected. */
const NO_CLIENT = absentMemory("no client: guest memory is gone");

/** A device plus everything the framework keeps for it. */
export class DeviceHost implements MigrationTarget {
  readonly device: Device;
  readonly config: PciConfigSpace;
  readonly irqs: IrqController;
  readonly regions: readonly RegionInfo[];
  /** Bounce buffers for message-based DMA; the limit holds across sessions. */
  readonly bounce: BouncePool;
  readonly #bars: BarMap;
  #memory: ClientMemory | undefined;
  /** Bumped when INTx is lowered: a deferred INTx trigger from before it is stale. */
  #intxGen = 0;
  /** The migration state machine and data transfer of this device. */
  readonly migration: MigrationController;
  #pauses = 0;
  #paused: Promise<void> = Promise.resolve();
  /** The host paused the device while no client is connected. */
  #absent = false;

  constructor(loop: EventLoop, device: Device, maxBounceBytes: number) {
    this.device = device;
    this.bounce = new BouncePool(maxBounceBytes);
    this.config = new PciConfigSpace(device.pci);
    this.#bars = new BarMap(device.pci);
    this.regions = regionInfos(device.pci);
    const config = this.config;
    this.irqs = new IrqController(
      loop,
      {
        get msixEnabled() {
          return config.msixEnabled;
        },
        get intxDisabled() {
          return config.intxDisabled;
        },
        setInterruptStatus: (on) => config.setIntxStatus(on),
      },
      this.config.msix,
      device.pci.interruptPin !== 0,
    );
    config.onChange((what) => {
      if (what === "command") this.irqs.commandChanged();
    });
    device.attach(this.#context());
    this.migration = new MigrationController(this, { maxIncoming: DEFAULT_MAX_INCOMING });
  }

  get deviceType(): string {
    return this.device.type;
  }

  get stateVersion(): number {
    return this.device.stateVersion;
  }

  #context(): DeviceContext {
    const config = this.config;
    const mem = forwardingMemory(() => this.#mem());
    return {
      mem,
      trigger: (v) => this.#trigger(v),
      afterWrites: () => this.#memory?.settled(),
      lowerIntx: () => {
        this.#intxGen++;
        this.irqs.lowerIntx();
      },
      msixEnabled: () => config.msixEnabled,
      busMaster: () => config.busMaster,
      log: logger("device", this.device.type),
    };
  }

  /**
   * Raises the interrupt once every posted DMA write the device issued before is acknowledged:
   * the eventfd and the socket are separate paths, and the guest must find the data (and the
   * used ring) in place when it takes the interrupt.
   */
  #trigger(vector: number): void {
    const posted = this.#memory?.settled();
    if (!posted) return this.irqs.trigger(vector);
    const gen = this.#intxGen;
    void posted.then(() => {
      // A level interrupt lowered meanwhile was acknowledged with this event included.
      if (this.config.msixEnabled || gen === this.#intxGen) this.irqs.trigger(vector);
    });
  }

  #mem(): GuestMemory {
    return this.#memory ?? NO_CLIENT;
  }

  /**
   * A client connected: its guest memory is installed, and a device paused since the previous
   * client left runs again.
   */
  clientArrived(mem: ClientMemory): void {
    this.#memory = mem;
    if (this.#absent) {
      this.#absent = false;
      this.resume();
    }
  }

  /** REGION_READ into `dst`. */
  read(region: number, offset: number, dst: Uint8Array): void {
    this.#access(region, offset, dst, false);
  }

  /** REGION_WRITE of `src`. */
  write(region: number, offset: number, src: Uint8Array): void {
    this.#access(region, offset, src, true);
  }

  #access(region: number, offset: number, buf: Uint8Array, write: boolean): void {
    const info = this.regions[region];
    if (!info || info.size === 0) {
      throw new VfioUserError(Errno.EINVAL, `region ${region} does not exist`);
    }
    if (offset + buf.length > info.size || buf.length === 0) {
      throw new VfioUserError(
        Errno.EINVAL,
        `region ${region}: access [${offset}, +${buf.length}) outside size ${info.size}`,
      );
    }
    if (region === RegionIndex.CONFIG) {
      return write ? this.config.write(offset, buf) : this.config.read(offset, buf);
    }
    const t = this.#bars.route(region, offset, buf.length);
    const msix = this.config.msix!;
    switch (t.kind) {
      case "msix-table":
        return write ? msix.tableWrite(t.offset, buf) : msix.tableRead(t.offset, buf);
      case "msix-pba":
        return write ? msix.pbaWrite(t.offset, buf) : msix.pbaRead(t.offset, buf);
      case "device":
        return write
          ? this.device.barWrite(region, t.offset, buf)
          : this.device.barRead(region, t.offset, buf);
    }
  }

  /**
   * DEVICE_RESET: the function returns to power-on state (eventfds stay installed) and the
   * migration state to RUNNING (the only way out of ERROR). The reset waits for the device's
   * requests to end, but never for the client: requests waiting for a DMA reply fail at once
   * (a VMM serves our DMA requests from the loop that waits for this reply, so waiting for it
   * would stall both sides).
   */
  async reset(): Promise<void> {
    const unfence = this.#memory?.fence(
      new VfioUserError(Errno.ECANCELED, "device reset: request abandoned"),
    );
    try {
      await this.#hold(false);
      try {
        await this.#resetState();
      } finally {
        if (this.migration.reset()) this.resume();
        this.resume();
      }
    } finally {
      unfence?.();
    }
  }

  async #resetState(): Promise<void> {
    await this.device.reset();
    this.config.reset();
    this.irqs.reset();
  }

  /**
   * The client left: its eventfds are closed, a migration transfer is abandoned, and the device
   * pauses until the next client (requests of the old one fail fast: their DMA is refused).
   * Device state is kept (spec, "Client Disconnection"). Resolves when the device is quiet.
   */
  clientGone(): Promise<void> {
    this.irqs.closeAll();
    this.#memory = undefined;
    this.migration.clientGone();
    if (!this.#absent) {
      this.#absent = true;
      void this.#hold(false);
    }
    return this.#paused;
  }

  /** Waits until no request touches guest memory; the device keeps running (or stays paused). */
  async quiesce(): Promise<void> {
    try {
      await this.#hold(false);
    } finally {
      this.resume();
    }
  }

  // --- lifecycle and migration (MigrationTarget) ---------------------------------------------

  /**
   * The migration's pause (MigrationTarget): resolves once nothing touches guest memory; what
   * waited for the client is captured, not waited for (see {@link #hold}).
   */
  pause(): Promise<void> {
    return this.#hold(true);
  }

  /**
   * One more pause. The first one stops the device and resolves once it is quiet and its
   * posted DMA writes are acknowledged (their interrupts raised). With `capture` (a migration's) nothing
   * waits for the client meanwhile: requests whose guest memory access needs a DMA reply are
   * captured by the device ({@link DmaPaused}) and run again later, so a VMM that answers DMA
   * from the loop waiting for the reply still gets it. Without (reset, a client's absence,
   * shutdown) requests run to their end.
   */
  #hold(capture: boolean): Promise<void> {
    if (this.#pauses++ === 0) {
      const unfence = capture ? this.#memory?.fence(new DmaPaused()) : undefined;
      this.#paused = this.device.pause()
        .then(() => this.#memory?.settled())
        .finally(() => unfence?.());
    }
    return this.#paused;
  }

  /** Ends one pause; after the last the device runs and pending interrupts are delivered. */
  resume(): void {
    if (this.#pauses === 0) return;
    if (--this.#pauses > 0) return;
    this.device.resume();
    this.irqs.redeliver();
  }

  /** Whether the device is paused (for any reason). */
  get paused(): boolean {
    return this.#pauses > 0;
  }

  saveEarly(): Section[] {
    return [
      { id: SectionId.PCI_CONFIG, data: this.config.save() },
      { id: SectionId.MSIX, data: this.config.msix?.save() ?? null },
    ];
  }

  save(): Section[] {
    return [
      ...this.saveEarly(),
      { id: SectionId.IRQ, data: this.irqs.save() },
      { id: SectionId.DEVICE, data: this.device.save() },
    ];
  }

  /**
   * Loads config space, MSI-X, interrupt lines and the device from a decoded stream, then checks
   * that the rings the device will use are DMA-mapped (EFAULT). Any refusal resets all of it.
   */
  async restore(sections: ReadonlyMap<number, RecordValue>, version: number): Promise<void> {
    try {
      const part = (id: number, name: string) => {
        if (!sections.has(id)) throw new VfioUserError(Errno.EINVAL, `no ${name} section`);
        return sections.get(id);
      };
      const msix = part(SectionId.MSIX, "MSI-X");
      if (!this.config.msix && msix !== null) {
        throw new VfioUserError(Errno.EINVAL, "MSI-X state for a device without MSI-X");
      }
      this.config.restore(part(SectionId.PCI_CONFIG, "PCI config"));
      this.config.msix?.restore(msix);
      this.irqs.restore(part(SectionId.IRQ, "IRQ"));
      this.device.restore(part(SectionId.DEVICE, "device"), version);
      this.#checkRegions();
    } catch (e) {
      await this.#resetState();
      throw e;
    }
  }

  /** With bus mastering on, every ring of the restored state must be DMA-mapped. */
  #checkRegions(): void {
    if (!this.config.busMaster) return;
    for (const r of this.device.guestRegions()) {
      if (this.#memory?.covers(r.addr, r.len, r.write)) continue;
      throw new VfioUserError(
        Errno.EFAULT,
        `${r.what} [0x${r.addr.toString(16)}, +0x${r.len.toString(16)}) is outside the DMA maps`,
      );
    }
  }
}
