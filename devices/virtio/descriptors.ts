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

async function indirectTable(mem: GuestMemory, desc: Desc, entries: number): Promise<Table> {
  const bytes = new Uint8Array(desc.len);
  await mem.read(desc.addr, bytes);
  return fetchedTable(bytes, entries);
}

/**
 * One walk along a chain, whatever reads its descriptors: the buffers so far, and where it is.
 * Enforces what the driver controls: indices in range, no loop, one level of indirection
 * (§2.7.5.3), readable buffers before writable ones (§2.7.4.2), at most 2^32 bytes (§2.7.5.1).
 */
class ChainWalk {
  readonly chain: DescChain;
  /** Entry of the current table to read next. */
  index: number;
  /** Entries of the current table. */
  size: number;
  /** Steps taken in the current table. */
  #seen = 0;
  #bytes = 0;
  #indirect = false;

  constructor(head: number, queueSize: number) {
    this.chain = { head, readable: [], writable: [] };
    this.index = head;
    this.size = queueSize;
  }

  /** Before reading entry `index`: throws on an index out of range or a loop. */
  step(): void {
    if (this.index >= this.size) {
      throw new VirtqueueError(`descriptor index ${this.index} out of range`);
    }
    if (++this.#seen > this.size) throw new VirtqueueError("descriptor chain loops");
  }

  /**
   * Goes on at the start of the indirect table `desc` points to, which must hold whole
   * descriptors, at most `queueSize`; returns its entries.
   */
  enterIndirect(desc: Desc, queueSize: number): number {
    if (this.#indirect) throw new VirtqueueError("nested indirect descriptor");
    const n = desc.len / DESC_SIZE;
    if (desc.flags & DescFlag.NEXT) throw new VirtqueueError("indirect descriptor with NEXT");
    if (!Number.isInteger(n) || n === 0 || n > queueSize) {
      throw new VirtqueueError(`bad indirect table length ${desc.len}`);
    }
    this.#indirect = true;
    this.index = 0;
    this.size = n;
    this.#seen = 0;
    return n;
  }

  /** Appends the buffer of a direct descriptor; true when it ends the chain. */
  take(desc: Desc): boolean {
    this.#bytes += desc.len;
    if (this.#bytes > MAX_CHAIN_BYTES) throw new VirtqueueError("descriptor chain too long");
    const buf = { addr: desc.addr, len: desc.len };
    if (desc.flags & DescFlag.WRITE) {
      this.chain.writable.push(buf);
    } else if (this.chain.writable.length > 0) {
      throw new VirtqueueError("readable descriptor after writable");
    } else {
      this.chain.readable.push(buf);
    }
    if (!(desc.flags & DescFlag.NEXT)) return true;
    this.index = desc.next;
    return false;
  }
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
  const w = new ChainWalk(head, queueSize);
  /** The indirect table, once read whole. */
  let indirect: DataView | undefined;
  for (;;) {
    w.step();
    const desc = indirect
      ? decodeView(indirect, w.index * DESC_SIZE)
      : descNow(mem, descAddr + BigInt(w.index * DESC_SIZE));
    if (!desc) return undefined;
    if (desc.flags & DescFlag.INDIRECT) {
      w.enterIndirect(desc, queueSize);
      if (tableScratch.length < desc.len) tableScratch = new Uint8Array(desc.len);
      const t = tableScratch.subarray(0, desc.len);
      if (!mem.readNow!(desc.addr, t)) return undefined; // the whole table in one access
      indirect = new DataView(t.buffer, 0, desc.len);
    } else if (w.take(desc)) {
      return w.chain;
    }
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
  const w = new ChainWalk(head, queueSize);
  let table = whole ? fetchedTable(await whole(), queueSize) : ringTable(mem, descAddr, queueSize);
  for (;;) {
    w.step();
    const desc = await table.get(w.index);
    if (desc.flags & DescFlag.INDIRECT) {
      table = await indirectTable(mem, desc, w.enterIndirect(desc, queueSize));
    } else if (w.take(desc)) {
      return w.chain;
    }
  }
}
