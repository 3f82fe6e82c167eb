/**
 * What the shared device lifecycle suite (device_lifecycle_test.ts) needs to know of a device
 * type: how to start a test instance and how a guest driver keeps it busy. The suite runs every
 * entry of DEVICE_TYPES and fails for a type without a kit.
 *
 * @module
 */
import type { GuestRam, VfioUserClient } from "../../../client/mod.ts";

/** Guest work on one device, checked exactly-once. */
export interface Workload {
  /** Submits `n` units of work (requests, transmit frames) and notifies the device. */
  start(n: number): Promise<void>;
  /** Waits (bounded) for all started work and checks that each unit completed exactly once. */
  finish(): Promise<void>;
  /** While the device is paused: work the outside world sends it (it must not be lost). */
  duringPause?(): Promise<void>;
  /** The device moved to another server (migration): the driver follows, not re-initialised. */
  moveTo(client: VfioUserClient): Promise<void>;
  /** Frees the driver's resources. */
  close(): void;
}

/** The device-specific part of the suite. */
export interface LifecycleKit {
  /**
   * What the source and destination of a test share (a disk image, a network peer) in the
   * directory `dir`; disposed at the end.
   */
  setup(dir: string): Promise<AsyncDisposable>;
  /** The `--device` spec of an instance using what `setup` made in `dir`. */
  device(dir: string): string;
  /** Brings the device up with a driver over `client` (guest RAM mapped at 0). */
  open(client: VfioUserClient, ram: GuestRam, shared: AsyncDisposable): Promise<Workload>;
}
