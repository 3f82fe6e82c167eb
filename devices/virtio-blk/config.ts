/**
 * The block device configuration structure (virtio 1.x §5.2.4).
 *
 * @module
 */
import { SECTOR_SIZE } from "../../spec/virtio_blk.ts";

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
  MAX_DISCARD_SECTORS: 36,
  MAX_DISCARD_SEG: 40,
  DISCARD_SECTOR_ALIGNMENT: 44,
  MAX_WRITE_ZEROES_SECTORS: 48,
  MAX_WRITE_ZEROES_SEG: 52,
  WRITE_ZEROES_MAY_UNMAP: 56,
} as const;

/** Limits of DISCARD / WRITE_ZEROES requests (only offered with their feature). */
export interface DwzLimits {
  maxSectors: number;
  maxSegments: number;
}

/** Values of the configuration fields the device offers. */
export interface BlkConfigValues {
  /** Device size in bytes; capacity is this divided by 512, rounded down. */
  sizeBytes: bigint;
  segMax: number;
  numQueues: number;
  /** Logical block size (BLK_SIZE); 512 unless the backend needs more (O_DIRECT). */
  blockSize?: number;
  /** DISCARD limits when offered. */
  discard?: DwzLimits;
  /** WRITE_ZEROES limits when offered, and whether it may deallocate. */
  writeZeroes?: DwzLimits & { mayUnmap: boolean };
}

/** Encodes the configuration structure. Fields of features not offered stay 0. */
export function encodeBlkConfig(v: BlkConfigValues): Uint8Array {
  const bytes = new Uint8Array(BLK_CONFIG_LENGTH);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(BlkConfigOffset.CAPACITY, v.sizeBytes / BigInt(SECTOR_SIZE), true);
  view.setUint32(BlkConfigOffset.SEG_MAX, v.segMax, true);
  const blockSize = v.blockSize ?? SECTOR_SIZE;
  view.setUint32(BlkConfigOffset.BLK_SIZE, blockSize, true);
  view.setUint16(BlkConfigOffset.NUM_QUEUES, v.numQueues, true);
  if (v.discard) {
    view.setUint32(BlkConfigOffset.MAX_DISCARD_SECTORS, v.discard.maxSectors, true);
    view.setUint32(BlkConfigOffset.MAX_DISCARD_SEG, v.discard.maxSegments, true);
    view.setUint32(BlkConfigOffset.DISCARD_SECTOR_ALIGNMENT, blockSize / SECTOR_SIZE, true);
  }
  if (v.writeZeroes) {
    view.setUint32(BlkConfigOffset.MAX_WRITE_ZEROES_SECTORS, v.writeZeroes.maxSectors, true);
    view.setUint32(BlkConfigOffset.MAX_WRITE_ZEROES_SEG, v.writeZeroes.maxSegments, true);
    bytes[BlkConfigOffset.WRITE_ZEROES_MAY_UNMAP] = v.writeZeroes.mayUnmap ? 1 : 0;
  }
  return bytes;
}
