/**
 * The runtime around one device model: PCI config space, BAR routing (MSI-X table and PBA are
 * the framework's, the rest the device's), interrupts, and the guest memory of whichever client
 * is connected. It outlives client sessions: device state survives a reconnect (spec,
 * "Reconnection").
 *
 * @module
 */
import type { Device, DeviceContext } from "../devices/device.ts";
import { absentMemory, forwardingMemory, type GuestMemory } from "../dma/guest_memory.ts";
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
}

/** What devices reach while no client is connected. */
const NO_CLIENT = absentMemory("no client: guest memory is gone");

/** A device plus everything the framework keeps for it. */
export class DeviceHost {
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
  }

  #context(): DeviceContext {
    const config = this.config;
    const mem = forwardingMemory(() => this.#mem());
    return {
      mem,
      trigger: (v) => this.#trigger(v),
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

  /** Installs the connected client's guest memory (undefined when it leaves). */
  setMemory(mem: ClientMemory | undefined): void {
    this.#memory = mem;
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

  /** DEVICE_RESET: the function returns to power-on state (eventfds stay installed). */
  async reset(): Promise<void> {
    await this.device.reset();
    this.config.reset();
    this.irqs.reset();
  }

  /** The client left: its eventfds are closed; device state is kept for the next one. */
  clientGone(): void {
    this.irqs.closeAll();
    this.#memory = undefined;
  }
}
