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
} as const;

/** Request types (§5.2.6). */
export const ReqType = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  GET_ID: 8,
} as const;

/** Request status byte values (§5.2.6). */
export const BlkStatus = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
} as const;
