/**
 * Modern virtio-over-PCI transport (virtio 1.x §4.1) and split virtqueues (§2.7), usable by any
 * virtio device model.
 *
 * @module
 */
export { VirtqueueError } from "./errors.ts";
export {
  type GuestBuffer,
  readBuffers,
  readBuffersNow,
  sliceBuffers,
  totalLength,
  writeBuffers,
  writeBuffersNow,
} from "./buffers.ts";
export { type DescChain, readChain } from "./descriptors.ts";
export {
  MSIX_BAR,
  msixVectors,
  NOTIFY_OFF_MULTIPLIER,
  Region,
  VIRTIO_BAR,
  VIRTIO_BAR_SIZE,
  type VirtioPciIdentity,
  virtioPciSpec,
} from "./layout.ts";
export type { ModelHost, VirtioDeviceModel } from "./model.ts";
export { type Register, RegisterFile } from "../common/regs.ts";
export { type QueueConfig, SplitQueue, type UsedElem } from "./virtqueue.ts";
export { VirtioPciDevice, type VirtioPciOptions } from "./transport.ts";
