/**
 * The block device configuration structure (virtio 1.x §5.2.4).
 *
 * @module
 */
import { SECTOR_SIZE } from "./constants.ts";

/** Length of struct virtio_blk_config up to write_zeroes_may_unmap and padding (§5.2.4). */
export const BLK_CONFIG_LENGTH = 60;

/** Field offsets in struct virtio_blk_config (§5.2.4). */
export const BlkConfigOffset = {
  CAPACITY: 0,
  SIZE_MAX: 8,
  SEG_MAX: 12,
  GEOMETRY: 16,
  BLK_SIZE: 20,
  TOPOLOGY: 24,
  WRITEBACK: 32,
  NUM_QUEUES: 34,
} as const;

/** Values of the configuration fields the device offers. */
export interface BlkConfigValues {
  /** Device size in bytes; capacity is this divided by 512, rounded down. */
  sizeBytes: bigint;
  segMax: number;
  numQueues: number;
}

/** Encodes the configuration structure. Fields of features not offered stay 0. */
export function encodeBlkConfig(v: BlkConfigValues): Uint8Array {
  const bytes = new Uint8Array(BLK_CONFIG_LENGTH);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(BlkConfigOffset.CAPACITY, v.sizeBytes / BigInt(SECTOR_SIZE), true);
  view.setUint32(BlkConfigOffset.SEG_MAX, v.segMax, true);
  view.setUint32(BlkConfigOffset.BLK_SIZE, SECTOR_SIZE, true);
  view.setUint16(BlkConfigOffset.NUM_QUEUES, v.numQueues, true);
  return bytes;
}
