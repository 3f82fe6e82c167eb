/**
 * Zero-copy data transfer between the guest buffers of a request and a vectored consumer (a
 * block backend's preadv/pwritev, ...), through {@link GuestMemory.transfer}: each guest range
 * is handed over in as few chunks as the memory allows (one for mmapped memory), each chunk's
 * segments in one call, and released before the next range is mapped. No mapping is held while
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
  let base = 0;
  for (const b of bufs) {
    if (b.len > 0) {
      const at = base;
      await mem.transfer(b.addr, b.len, writable, (segs, off) => fn(segs, at + off));
    }
    base += b.len;
  }
}
