/**
 * The small interface every device model implements. Devices never see the socket: the session
 * calls into them for region accesses and resets, and hands them a {@link DeviceContext} through
 * which they reach guest memory and raise interrupts.
 *
 * @module
 */
import type { GuestMemory } from "../dma/guest_memory.ts";
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
   * request of the device touches guest memory anymore.
   */
  reset(): Promise<void>;
  /** Waits until in-flight requests finished (used before DMA unmap/disconnect/shutdown). */
  quiesce(): Promise<void>;
  /** Flushes backing storage (shutdown). */
  flush?(): Promise<void>;
  /** Frees host resources at exit. */
  close(): void;
}
