/**
 * The virtio-blk numbers (defined once in spec/virtio_blk.ts, shared with the client's driver)
 * and this model's own choices.
 *
 * @module
 */
export * from "../../spec/virtio_blk.ts";

/** PCI class code: mass storage, SCSI (what QEMU uses for virtio-blk). */
export const CLASS_STORAGE_SCSI = 0x010000;
