/**
 * The virtio block device (virtio 1.x §5.2) and its storage interface.
 *
 * @module
 */
export { type BlockBackend, MemoryBackend, type MemoryBackendOptions } from "./backend.ts";
export { BLK_CONFIG_LENGTH, BlkConfigOffset, encodeBlkConfig } from "./config.ts";
export { createVirtioBlk, type VirtioBlkOptions } from "./device.ts";
export { type BlkTarget, handleBlkRequest } from "./request.ts";
