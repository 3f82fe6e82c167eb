/**
 * Zero-copy data transfer between the guest buffers of a request and a vectored consumer (a
 * block backend's preadv/pwritev, ...), through {@link GuestMemory.transferv}: with mmapped
 * memory the whole request is one call (one preadv for all its segments); otherwise each guest
 * range goes in as few chunks as the memory allows, released before the next is mapped. No mapping is held while
 * another is waited for, as GuestMemory requires (bounce-buffer pools are bounded).
 *
 * @module
 */
import type { GuestMemory } from "../../dma/guest_memory.ts";
import type { GuestBuffer } from "./buffers.ts";

/**
 * Calls `fn(segments, byteOffset)` for consecutive chunks of `bufs`, where byteOffset is the
 * position of the chunk's first byte within the concatenation of `bufs`. `writable` maps for
 * device writes (the bytes reach the guest when each chunk is released).
 */
export async function transferBuffers(
  mem: GuestMemory,
  bufs: readonly GuestBuffer[],
  writable: boolean,
  fn: (segments: readonly Uint8Array[], byteOffset: number) => Promise<void> | void,
): Promise<void> {
  await mem.transferv(bufs, writable, fn);
}
