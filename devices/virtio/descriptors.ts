/**
 * Walks split-virtqueue descriptor chains (virtio 1.x §2.7.5), including indirect tables
 * (§2.7.5.3), and validates everything the driver controls.
 *
 * @module
 */
import type { GuestMemory } from "../../dma/guest_memory.ts";
import type { GuestBuffer } from "./buffers.ts";
import { DescFlag } from "../../spec/virtio.ts";
import { VirtqueueError } from "./errors.ts";

/** Size of one descriptor: addr u64, len u32, flags u16, next u16. */
export const DESC_SIZE = 16;
/** A chain may carry at most 2^32 bytes (§2.7.5.1). */
const MAX_CHAIN_BYTES = 2 ** 32;

/** A descriptor chain split by direction. Device-readable buffers precede writable ones. */
export interface DescChain {
  /** Index of the head descriptor: the id reported in the used ring. */
  readonly head: number;
  /** Buffers the device reads (driver to device). */
  readonly readable: GuestBuffer[];
  /** Buffers the device writes (device to driver). */
  readonly writable: GuestBuffer[];
}

interface Desc {
  addr: bigint;
  len: number;
  flags: number;
  next: number;
}

function decodeView(v: DataView, at: number): Desc {
  return {
    addr: v.getBigUint64(at, true),
    len: v.getUint32(at + 8, true),
    flags: v.getUint16(at + 12, true),
    next: v.getUint16(at + 14, true),
  };
}

function decode(bytes: Uint8Array, at: number): Desc {
  return decodeView(new DataView(bytes.buffer, bytes.byteOffset + at, DESC_SIZE), 0);
}

/**
 * Entries of the indirect table `desc` points to (§2.7.5.3): without NEXT, whole descriptors,
 * at most a queue's worth.
 */
function indirectEntries(desc: Desc, queueSize: number): number {
  const n = desc.len / DESC_SIZE;
  if (desc.flags & DescFlag.NEXT) throw new VirtqueueError("indirect descriptor with NEXT");
  if (!Number.isInteger(n) || n === 0 || n > queueSize) {
    throw new VirtqueueError(`bad indirect table length ${desc.len}`);
  }
  return n;
}

/** A descriptor table: the ring's own (read per entry) or an indirect one (read at once). */
interface Table {
  readonly size: number;
  get(index: number): Promise<Desc>;
}

function ringTable(mem: GuestMemory, addr: bigint, size: number): Table {
  return {
    size,
    async get(index) {
      const bytes = new Uint8Array(DESC_SIZE);
      await mem.read(addr + BigInt(index * DESC_SIZE), bytes);
      return decode(bytes, 0);
    },
  };
}

function fetchedTable(bytes: Uint8Array, size: number): Table {
  return { size, get: (index) => Promise.resolve(decode(bytes, index * DESC_SIZE)) };
}

async function indirectTable(mem: GuestMemory, desc: Desc, queueSize: number): Promise<Table> {
  const n = indirectEntries(desc, queueSize);
  const bytes = new Uint8Array(desc.len);
  await mem.read(desc.addr, bytes);
  return { size: n, get: (index) => Promise.resolve(decode(bytes, index * DESC_SIZE)) };
}

/**
 * Checks the step to entry `index` of a table of `size` entries, the walk's `seen`th in that
 * table: an index out of range, or more steps than entries (a loop), is the driver's error.
 */
function checkStep(index: number, seen: number, size: number): void {
  if (index >= size) throw new VirtqueueError(`descriptor index ${index} out of range`);
  if (seen > size) throw new VirtqueueError("descriptor chain loops");
}

/**
 * Appends `desc` to `chain`, enforcing readable-before-writable order (§2.7.4.2) and the
 * chain's byte limit; `bytes` is the chain's length so far. Returns the length with `desc`.
 */
function addBuffer(chain: DescChain, desc: Desc, bytes: number): number {
  bytes += desc.len;
  if (bytes > MAX_CHAIN_BYTES) throw new VirtqueueError("descriptor chain too long");
  const buf = { addr: desc.addr, len: desc.len };
  if (desc.flags & DescFlag.WRITE) {
    chain.writable.push(buf);
  } else {
    if (chain.writable.length > 0) throw new VirtqueueError("readable descriptor after writable");
    chain.readable.push(buf);
  }
  return bytes;
}

/**
 * Reads the chain starting at `head` of the descriptor table at `descAddr`. Throws
 * {@link VirtqueueError} on malformed chains; guest-memory errors (EFAULT) propagate. When every
 * descriptor lies in mmapped guest RAM the chain is read at once (no promise).
 */
export function readChain(
  mem: GuestMemory,
  descAddr: bigint,
  queueSize: number,
  head: number,
  ringTable?: () => Promise<Uint8Array>,
): DescChain | Promise<DescChain> {
  return (mem.readNow && readChainNow(mem, descAddr, queueSize, head)) ||
    readChainSlow(mem, descAddr, queueSize, head, ringTable);
}

const SCRATCH = new Uint8Array(DESC_SIZE);
const SCRATCH_VIEW = new DataView(SCRATCH.buffer);

/** One descriptor at `addr` read at once, or undefined when it cannot be. */
function descNow(mem: GuestMemory, addr: bigint): Desc | undefined {
  return mem.readNow!(addr, SCRATCH) ? decodeView(SCRATCH_VIEW, 0) : undefined;
}

/** Scratch for an indirect table read at once (a chain is parsed without a wait in between). */
let tableScratch = new Uint8Array(DESC_SIZE * 64);

/** {@link readChain} done synchronously; undefined when some descriptor is not mmapped. */
function readChainNow(
  mem: GuestMemory,
  descAddr: bigint,
  queueSize: number,
  head: number,
): DescChain | undefined {
  const chain: DescChain = { head, readable: [], writable: [] };
  let table = descAddr;
  let size = queueSize;
  /** The indirect table, once read whole. */
  let indirect: DataView | undefined;
  let index = head;
  let seen = 0;
  let bytes = 0;
  for (;;) {
    checkStep(index, ++seen, size);
    const desc = indirect
      ? decodeView(indirect, index * DESC_SIZE)
      : descNow(mem, table + BigInt(index * DESC_SIZE));
    if (!desc) return undefined;
    if (desc.flags & DescFlag.INDIRECT) {
      if (indirect) throw new VirtqueueError("nested indirect descriptor");
      const n = indirectEntries(desc, queueSize);
      if (tableScratch.length < desc.len) tableScratch = new Uint8Array(desc.len);
      const t = tableScratch.subarray(0, desc.len);
      if (!mem.readNow!(desc.addr, t)) return undefined; // the whole table in one access
      indirect = new DataView(t.buffer, 0, desc.len);
      table = desc.addr;
      size = n;
      index = 0;
      seen = 0;
      continue;
    }
    bytes = addBuffer(chain, desc, bytes);
    if (!(desc.flags & DescFlag.NEXT)) return chain;
    index = desc.next;
  }
}

/**
 * {@link readChain} through GuestMemory.read. `whole`, when given, fetches the ring's whole
 * descriptor table (once per batch of heads: one round trip to the client instead of one per
 * descriptor when guest memory is message-based).
 */
async function readChainSlow(
  mem: GuestMemory,
  descAddr: bigint,
  queueSize: number,
  head: number,
  whole?: () => Promise<Uint8Array>,
): Promise<DescChain> {
  const chain: DescChain = { head, readable: [], writable: [] };
  let table = whole ? fetchedTable(await whole(), queueSize) : ringTable(mem, descAddr, queueSize);
  let indirect = false;
  let index = head;
  let seen = 0;
  let bytes = 0;
  for (;;) {
    checkStep(index, ++seen, table.size);
    const desc = await table.get(index);
    if (desc.flags & DescFlag.INDIRECT) {
      if (indirect) throw new VirtqueueError("nested indirect descriptor");
      table = await indirectTable(mem, desc, queueSize);
      indirect = true;
      index = 0;
      seen = 0;
      continue;
    }
    bytes = addBuffer(chain, desc, bytes);
    if (!(desc.flags & DescFlag.NEXT)) return chain;
    index = desc.next;
  }
}
