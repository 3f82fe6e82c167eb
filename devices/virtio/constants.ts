/**
 * The virtio numbers, defined once in spec/virtio.ts (shared with the client's driver).
 *
 * @module
 */
export * from "../../spec/virtio.ts";
