/**
 * Errors raised by the virtqueue code on guest input it cannot process.
 *
 * @module
 */

/**
 * The driver broke the virtqueue contract (bad descriptor index, loop, bad indirect table, avail
 * index jump, ring not DMA-mapped, ...) in a way that no per-request status can report. The
 * transport answers by setting DEVICE_NEEDS_RESET (virtio 1.x §2.1.2) and stopping the queue.
 */
export class VirtqueueError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "VirtqueueError";
  }
}
