/**
 * The small interface every device model implements. Devices never see the socket: the session
 * calls into them for region accesses and resets, and hands them a {@link DeviceContext} through
 * which they reach guest memory and raise interrupts.
 *
 * Lifecycle. One set of hooks serves DEVICE_RESET, client reconnect and migration:
 *
 * - `pause()` stops the device: no new work starts (kicks, ring tails and received frames are
 *   remembered, not acted on), work already started runs to its end or is captured in the state
 *   (so a destination re-runs it), and once the promise resolves nothing touches guest memory and
 *   no interrupt is raised for old work. `resume()` undoes it and acts on what was remembered.
 * - `save()` (paused) returns the device's state as a plain, versioned record
 *   (protocol/record.ts): registers, ring indices, queued frames... never fds, mmaps or DMA maps,
 *   which the client sets up again.
 * - `restore(state, version)` (paused) loads such a record. It is untrusted input: every field
 *   is checked before anything changes, and a bad one throws `ErrnoError` (EINVAL).
 * - "Quiescing" is pause then resume: {@link quiesce}.
 *
 * @module
 */
import type { GuestMemory } from "../dma/guest_memory.ts";
import type { RecordValue } from "../protocol/record.ts";
import type { PciConfigSpec } from "../pci/spec.ts";
import type { Logger } from "@logtape/logtape";
import type { EventLoop } from "../sys/event_loop.ts";

/** What a device can do to the outside world. */
export interface DeviceContext {
  /** Guest memory, mmapped or message-based; identical for the device either way. */
  readonly mem: GuestMemory;
  /**
   * Raises an interrupt. With MSI-X enabled this signals MSI-X vector `vector` (or sets its
   * pending bit while masked); otherwise it asserts the INTx line (level, see {@link lowerIntx}).
   */
  trigger(vector: number): void;
  /** Deasserts the INTx line (e.g. when the guest reads an interrupt status register). */
  lowerIntx(): void;
  /**
   * Resolves once every guest-memory write the device issued so far is visible to the guest;
   * undefined when all already are (mmapped memory; message DMA with nothing in flight). A status
   * register that announces written data (a "descriptor done" cause) waits for it: on PCI a read
   * completion never passes the device's earlier writes, but message-based writes reach the
   * guest through the client's main loop, after a register read the vCPU may already have had.
   */
  afterWrites?(): Promise<void> | undefined;
  /** True when the guest enabled MSI-X (MSI-X capability Enable bit, function not masked). */
  msixEnabled(): boolean;
  /** True when the guest enabled bus mastering (PCI COMMAND bit 2): DMA is allowed. */
  busMaster(): boolean;
  /** The device's logger (guest-caused failures go here, not to exceptions). */
  readonly log: Logger;
}

/** What a device factory gets from the program besides its options. */
export interface DeviceEnv {
  /** The process's event loop: backends watch their fds on it. */
  readonly loop: EventLoop;
}

/** A device's saved state: a plain record. */
export type DeviceState = RecordValue;

/** Guest memory a device's state points at (rings): it must be DMA-mapped for the device. */
export interface GuestRegion {
  addr: bigint;
  len: number;
  /** The device writes there (a used ring, receive descriptors). */
  write: boolean;
  /** What it is, for messages ("queue 0 used ring"). */
  what: string;
}

/** A PCI device model. */
export interface Device {
  /** Short type name, e.g. "virtio-blk". */
  readonly type: string;
  /**
   * What is being served, in a few words for the log and the service status, e.g.
   * "/var/lib/vfud/disk0.img: 10 GiB, read-write, serial disk0".
   */
  summary?: string;
  /** Requests the device took from the guest so far (for a rate in the service status). */
  readonly requests?: number;
  /** Identity, BARs, capabilities and interrupts of the function. */
  readonly pci: PciConfigSpec;
  /** Called once before any other method with the context of the device. */
  attach(ctx: DeviceContext): void;
  /** A read of `dst.length` bytes at `offset` of BAR `bar` (device-owned part of the BAR). */
  barRead(bar: number, offset: number, dst: Uint8Array): void;
  /** A write of `src` at `offset` of BAR `bar`. May start asynchronous work (e.g. a queue kick). */
  barWrite(bar: number, offset: number, src: Uint8Array): void;
  /**
   * Resets device state to power-on (DEVICE_RESET, or the guest's own reset). Resolves when no
   * request of the device touches guest memory anymore. A paused device stays paused.
   */
  reset(): Promise<void>;
  /**
   * Stops the device (see the module doc); resolves once nothing touches guest memory. Pauses
   * nest (migration, reset and a client's absence may overlap): each needs its {@link resume}.
   */
  pause(): Promise<void>;
  /** Ends one {@link pause}; after the last one the device runs again. Extra calls are ignored. */
  resume(): void;
  /** Version of the record {@link save} returns; {@link restore} takes it and older ones. */
  readonly stateVersion: number;
  /** The device's state as a plain record (only while paused). */
  save(): DeviceState;
  /**
   * Loads a saved state of version `version` (only while paused). Throws `ErrnoError`
   * (EINVAL) without changing anything when the record is not a valid state of this device.
   */
  restore(state: unknown, version: number): void;
  /** Guest memory the current state points at (checked against the DMA maps after a restore). */
  guestRegions(): GuestRegion[];
  /** Flushes backing storage (shutdown). */
  flush?(): Promise<void>;
  /** Frees host resources at exit. */
  close(): void;
}

/**
 * Waits until no request of `device` touches guest memory, then lets it run on (or stay paused,
 * when someone else paused it).
 */
export async function quiesce(device: Device): Promise<void> {
  try {
    await device.pause();
  } finally {
    device.resume();
  }
}

/**
 * The nesting bookkeeping of {@link Device.pause} / {@link Device.resume}: the first pause runs
 * the device's stop procedure, later ones share its promise; the last resume runs its start.
 */
export class PauseCount {
  #depth = 0;
  #stopped: Promise<void> = Promise.resolve();

  /** True while at least one pause is in force. */
  get paused(): boolean {
    return this.#depth > 0;
  }

  /** One more pause; `stop` runs on the first. Resolves when the device is quiet. */
  pause(stop: () => Promise<void>): Promise<void> {
    if (this.#depth++ === 0) this.#stopped = stop();
    return this.#stopped;
  }

  /** One pause less; `start` runs when the last one ends. */
  resume(start: () => void): void {
    if (this.#depth === 0) return;
    if (--this.#depth === 0) start();
  }
}
