/**
 * Numbers of the virtio block device (virtio 1.x §5.2), shared by the device model and the
 * client's driver.
 *
 * @module
 */

/** Virtio device id of block devices (§5). */
export const VIRTIO_ID_BLOCK = 2;

/** Sector size of request offsets and capacity (§5.2.4). */
export const SECTOR_SIZE = 512;
/** Length of the GET_ID answer (§5.2.6). */
export const ID_BYTES = 20;
/** Size of the request header: type u32, reserved u32, sector u64 (§5.2.6). */
export const HEADER_SIZE = 16;

/** Block feature bits (§5.2.3), as bit numbers. */
export const BlkFeature = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  GEOMETRY: 4,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  TOPOLOGY: 10,
  CONFIG_WCE: 11,
  MQ: 12,
  DISCARD: 13,
  WRITE_ZEROES: 14,
} as const;

/** Request types (§5.2.6). */
export const ReqType = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  GET_ID: 8,
  DISCARD: 11,
  WRITE_ZEROES: 13,
} as const;

/** struct virtio_blk_discard_write_zeroes: sector u64, num_sectors u32, flags u32 (§5.2.6). */
export const DWZ_SEGMENT_SIZE = 16;
/** The unmap bit of its flags. */
export const DWZ_FLAG_UNMAP = 1;

/** Request status byte values (§5.2.6). */
export const BlkStatus = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
} as const;
