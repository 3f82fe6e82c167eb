/**
 * A ring of fixed-size entries in guest memory, as hardware queues lay them out (the 82540EM's
 * descriptor rings, an NVMe queue, the completion log of the test device): `count` entries from
 * `base`, indices going round. A run of entries that passes the end is read or written in two
 * accesses, the part up to the end and the part from the start, and never beyond the ring.
 *
 * @module
 */
import type { GuestMemory } from "../../dma/guest_memory.ts";

/** Where a ring lies in guest memory. */
export interface RingLayout {
  /** Guest address of entry 0. */
  readonly base: bigint;
  /** Number of entries. */
  readonly count: number;
  /** Bytes per entry. */
  readonly entrySize: number;
}

/** Guest address of entry `i` (0 <= i < count). */
export function entryAddr(ring: RingLayout, i: number): bigint {
  return ring.base + BigInt(i * ring.entrySize);
}

/** Entries from `from` up to (excluding) `to`, going round the ring. */
export function ringDistance(ring: RingLayout, from: number, to: number): number {
  return (to - from + ring.count) % ring.count;
}

/** Reads `n` entries (n <= count) starting at entry `from`, going round the ring. */
export async function readEntries(
  mem: GuestMemory,
  ring: RingLayout,
  from: number,
  n: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(n * ring.entrySize);
  const [first, rest] = split(ring, from, out);
  await mem.read(entryAddr(ring, from), first);
  if (rest.length) await mem.read(ring.base, rest);
  return out;
}

/** Writes whole entries (`entries.length` a multiple of the entry size) from entry `at` on. */
export async function writeEntries(
  mem: GuestMemory,
  ring: RingLayout,
  at: number,
  entries: Uint8Array,
): Promise<void> {
  const [first, rest] = split(ring, at, entries);
  await mem.write(entryAddr(ring, at), first);
  if (rest.length) await mem.write(ring.base, rest);
}

/** `bytes` cut where the ring wraps: the part up to its end from entry `at`, and the rest. */
function split(ring: RingLayout, at: number, bytes: Uint8Array): [Uint8Array, Uint8Array] {
  const n = bytes.length / ring.entrySize;
  if (!Number.isInteger(n) || n > ring.count || at < 0 || at >= ring.count) {
    throw new RangeError(`${n} entries at ${at} of a ring of ${ring.count}`);
  }
  const cut = Math.min(n, ring.count - at) * ring.entrySize;
  return [bytes.subarray(0, cut), bytes.subarray(cut)];
}
