/**
 * Guest buffers of a descriptor chain as lists of (address, length) ranges, with helpers to copy
 * small structures (data moves with GuestMemory.transferv, one vectored call per request). Device models must not assume any framing
 * (virtio 1.x §2.6.4): a header may share a descriptor with data or be split over several.
 *
 * @module
 */
import type { GuestMemory } from "../../dma/guest_memory.ts";

/** One guest-physical range of a descriptor chain. */
export interface GuestBuffer {
  readonly addr: bigint;
  readonly len: number;
}

/** Total length of `bufs` in bytes. */
export function totalLength(bufs: readonly GuestBuffer[]): number {
  let n = 0;
  for (const b of bufs) n += b.len;
  return n;
}

/** The ranges covering bytes [offset, offset+length) of the concatenation of `bufs`. */
export function sliceBuffers(
  bufs: readonly GuestBuffer[],
  offset: number,
  length: number,
): GuestBuffer[] {
  const out: GuestBuffer[] = [];
  let skip = offset;
  let left = length;
  for (const b of bufs) {
    if (left === 0) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    const len = Math.min(b.len - skip, left);
    out.push(skip === 0 && len === b.len ? b : { addr: b.addr + BigInt(skip), len });
    left -= len;
    skip = 0;
  }
  if (left > 0) throw new RangeError("slice beyond the buffers");
  return out;
}

/** Guest address of bytes [offset, offset+length) of `bufs` when one buffer holds them all. */
function withinOne(
  bufs: readonly GuestBuffer[],
  offset: number,
  length: number,
): bigint | undefined {
  for (const b of bufs) {
    if (offset < b.len) return offset + length <= b.len ? b.addr + BigInt(offset) : undefined;
    offset -= b.len;
  }
  return undefined;
}

/**
 * {@link readBuffers} done at once when the bytes lie in the first range that holds `offset` and
 * that range is mmapped (GuestMemory.readNow); false otherwise (nothing copied).
 */
export function readBuffersNow(
  mem: GuestMemory,
  bufs: readonly GuestBuffer[],
  offset: number,
  dst: Uint8Array,
): boolean {
  if (!mem.readNow) return false;
  const at = withinOne(bufs, offset, dst.length);
  return at !== undefined && mem.readNow(at, dst);
}

/** {@link writeBuffers} done at once when it can be (see {@link readBuffersNow}). */
export function writeBuffersNow(
  mem: GuestMemory,
  bufs: readonly GuestBuffer[],
  offset: number,
  src: Uint8Array,
): boolean {
  if (!mem.writeNow) return false;
  const at = withinOne(bufs, offset, src.length);
  return at !== undefined && mem.writeNow(at, src);
}

/** Copies bytes [offset, offset+dst.length) of `bufs` into `dst`. */
export async function readBuffers(
  mem: GuestMemory,
  bufs: readonly GuestBuffer[],
  offset: number,
  dst: Uint8Array,
): Promise<void> {
  let at = 0;
  for (const r of sliceBuffers(bufs, offset, dst.length)) {
    await mem.read(r.addr, dst.subarray(at, at + r.len));
    at += r.len;
  }
}

/** Copies `src` to bytes [offset, offset+src.length) of `bufs`. */
export async function writeBuffers(
  mem: GuestMemory,
  bufs: readonly GuestBuffer[],
  offset: number,
  src: Uint8Array,
): Promise<void> {
  let at = 0;
  for (const r of sliceBuffers(bufs, offset, src.length)) {
    await mem.write(r.addr, src.subarray(at, at + r.len));
    at += r.len;
  }
}
