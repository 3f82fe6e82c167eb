/**
 * What a virtio device model (block, net, ...) provides to the PCI transport.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { GuestMemory } from "../../dma/guest_memory.ts";
import type { DescChain } from "./descriptors.ts";
import type { RecordValue } from "../../protocol/record.ts";

/** What a request handler may use. */
export interface RequestContext {
  /** Guest memory of the device. */
  readonly mem: GuestMemory;
  /** Features the driver accepted (FEATURES_OK), device-specific and reserved bits. */
  readonly features: bigint;
  /** The device's logger. */
  readonly log: Logger;
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
  /** Reads the device configuration structure (§4.1.4.6). */
  readConfig(offset: number, dst: Uint8Array): void;
  /** Driver write to the device configuration structure; ignore if nothing is writable. */
  writeConfig(offset: number, src: Uint8Array, features: bigint): void;
  /**
   * Processes one descriptor chain of queue `queue`; resolves with the number of bytes written
   * into the chain's device-writable buffers (the used length). Per-request failures are
   * reported in-band (e.g. a status byte). Throwing means the request cannot be completed at
   * all: the transport sets DEVICE_NEEDS_RESET (§2.1.2) and stops the queue.
   */
  handle(queue: number, chain: DescChain, ctx: RequestContext): Promise<number>;
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
