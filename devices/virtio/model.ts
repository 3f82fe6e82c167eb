/**
 * What a virtio device model (block, net, ...) provides to the PCI transport, and what the
 * transport gives it back.
 *
 * Two ways work reaches a model. The driver's: a kick makes the transport take the buffers the
 * driver made available and call {@link VirtioDeviceModel.handle} for each (a block request, a
 * packet to transmit). The model's own: a queue whose buffers wait for something from outside
 * (a receive queue waits for frames) says through {@link VirtioDeviceModel.ready} how many
 * buffers it can fill now, and the model calls {@link ModelHost.kick} when that number grows: the
 * transport then takes that many buffers and hands each to `handle` as well. Either way requests
 * run, complete, pause, migrate and reset the same way (devices/virtio/queue_runner.ts).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { GuestMemory } from "../../dma/guest_memory.ts";
import type { EventLoop, SetTimer } from "../../sys/event_loop.ts";
import type { DescChain } from "./descriptors.ts";
import type { RecordValue } from "../../protocol/record.ts";

/**
 * The transport's side of a model: given once ({@link VirtioDeviceModel.attach}) and with every
 * request. Guest memory and the logger are those of the current client (they change when the
 * device is attached again after a reconnect); use them only while handling a request or after
 * the device was attached.
 */
export interface ModelHost {
  /** Guest memory of the device. */
  readonly mem: GuestMemory;
  /** Features the driver accepted (FEATURES_OK), device-specific and reserved bits. */
  readonly features: bigint;
  /** The device's logger. */
  readonly log: Logger;
  /**
   * The loop that serves the device (backends watch their fds on it); absent where the device
   * runs without one (unit tests).
   */
  readonly loop: EventLoop | undefined;
  /** Starts a timer: the serving loop's when there is one, else Deno's. */
  readonly setTimer: SetTimer;
  /**
   * The model has work for queue `queue` ({@link VirtioDeviceModel.ready} grew): the transport
   * takes buffers for it as for a driver's notification. Remembered while the device is paused;
   * ignored before DRIVER_OK and after a device error.
   */
  kick(queue: number): void;
  /**
   * The device configuration changed (e.g. capacity, link status): bumps config_generation and
   * sends the driver a configuration change notification (§2.5.1, §4.1.5.3).
   */
  configChanged(): void;
}

/** A virtio device type plugged into {@link VirtioPciDevice}. */
export interface VirtioDeviceModel {
  /** Short type name, e.g. "virtio-blk". */
  readonly type: string;
  /** Virtio device id (§5), e.g. 2 for block. */
  readonly deviceId: number;
  /** 24-bit PCI class code. */
  readonly classCode: number;
  /** Device-specific feature bits offered (the transport adds VERSION_1 and ring features). */
  readonly features: bigint;
  /** Maximum size of each virtqueue (powers of two); its length is the number of queues. */
  readonly queueSizes: readonly number[];
  /** Length in bytes of the device-specific configuration structure. */
  readonly configLength: number;
  /** Called once by the transport's constructor with the host the model may keep. */
  attach?(host: ModelHost): void;
  /** Reads the device configuration structure (§4.1.4.6). */
  readConfig(offset: number, dst: Uint8Array): void;
  /** Driver write to the device configuration structure; ignore if nothing is writable. */
  writeConfig(offset: number, src: Uint8Array, features: bigint): void;
  /**
   * How many buffers of queue `queue` the model can use now (default: all there are). A queue
   * of the model's own work answers with what it has to deliver (frames received), 0 while it
   * has nothing: the transport then leaves the driver's buffers in the ring until
   * {@link ModelHost.kick}.
   */
  ready?(queue: number): number;
  /**
   * Processes one descriptor chain of queue `queue`; resolves with the number of bytes written
   * into the chain's device-writable buffers (the used length). Per-request failures are
   * reported in-band (e.g. a status byte). Throwing means the request cannot be completed at
   * all: the transport sets DEVICE_NEEDS_RESET (§2.1.2) and stops the queue.
   */
  handle(queue: number, chain: DescChain, host: ModelHost): Promise<number>;
  /** Device-specific part of a reset, after all requests finished (§2.4). */
  reset(): void;
  /** The model's own state as a plain record (default: none). */
  save?(): RecordValue;
  /**
   * Loads a record of {@link save} (untrusted): throws `ErrnoError(EINVAL)` before changing
   * anything when it does not fit this device (e.g. another disk size).
   */
  restore?(state: unknown): void;
  /** Flushes backing storage. */
  flush?(): Promise<void>;
  /** Frees host resources. */
  close(): void;
}
