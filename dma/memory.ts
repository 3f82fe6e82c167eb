/**
 * {@link GuestMemory} over a session's {@link DmaTable}: zero-copy views for mmapped regions,
 * bounce buffers filled and flushed through DMA messages for the others.
 *
 * @module
 */
import { Errno } from "../sys/errno.ts";
import {
  GuestFault,
  type GuestMapping,
  type GuestMemory,
  type GuestRange,
  transferInChunks,
  type Writable,
} from "./guest_memory.ts";
import type { DmaRegion, DmaTable } from "./table.ts";
import { DmaMapFlags } from "../protocol/dma.ts";
import type { DirtyLog } from "./dirty.ts";

/**
 * Moves bytes to and from message-based regions (DMA_READ / DMA_WRITE to the client), and
 * hands out bounce buffers under the session's size limit.
 */
export interface MessageDma {
  /** Reads guest bytes at `addr` into `dst` (split into messages as needed). */
  read(addr: bigint, dst: Uint8Array): Promise<void>;
  /**
   * Writes `src` to guest memory at `addr`. The messages are sent (or queued with a copy)
   * before this returns, so `src` may be reused at once; the promise settles when the client
   * acknowledged them. The client applies our requests in order, so a later read sees the
   * write without waiting for the acknowledgement (writes are posted, like PCI memory writes).
   */
  write(addr: bigint, src: Uint8Array): Promise<void>;
  /** Resolves once every write sent so far is acknowledged; undefined when none is pending. */
  settled(): Promise<void> | undefined;
  /** True while posted writes wait for their acknowledgement (what settled() would wait for). */
  writesPending?(): boolean;
  /** Gets a bounce buffer of `length` bytes, waiting in FIFO order for room under the limit. */
  acquire(length: number): Promise<Uint8Array>;
  /** Returns a bounce buffer. */
  releaseBuffer(buf: Uint8Array): void;
  /** Largest bounce buffer one acquire may ask for. */
  readonly maxBuffer: number;
  /**
   * Makes every wait for the client fail at once (outstanding reads, acknowledgements, buffer
   * waits) until the returned function is called.
   */
  fence?(reason: Error): () => void;
}

/**
 * A full memory barrier. The virtio ring protocol has the device store one index and then load
 * another (used.idx then used_event, avail_event then avail.idx, virtio 1.x §2.7.10) while the
 * driver does the mirror image on another CPU; x86 may let a load pass an earlier store, and then
 * both sides miss each other's update: a lost interrupt or kick, and a hung queue. A locked
 * read-modify-write (what Atomics compile to) orders every earlier store before every later load.
 */
const FENCE = new Int32Array(new SharedArrayBuffer(4));
export function fullFence(): void {
  Atomics.exchange(FENCE, 0, 0);
}

interface Piece {
  region: DmaRegion;
  addr: bigint;
  length: number;
}

/**
 * Guest memory of one session. With a {@link DirtyLog} installed, every device write marks its
 * pages once the bytes are in place: `write()` after its stores, a writable mapping when it is
 * released (the device may have written any of it), in both DMA modes.
 */
export class SessionMemory implements GuestMemory {
  readonly #table: DmaTable;
  #dma: MessageDma | undefined;
  #dirty: DirtyLog | undefined;
  /** The mmapped region of the last fast access (ring and descriptor accesses hit one). */
  #last: DmaRegion | undefined;

  constructor(table: DmaTable, dma?: MessageDma) {
    this.#table = table;
    this.#dma = dma;
  }

  /** Installs (or removes) the message-based DMA path. */
  setMessageDma(dma: MessageDma | undefined): void {
    this.#dma = dma;
  }

  /** The dirty log in force, if the client started one. */
  get dirtyLog(): DirtyLog | undefined {
    return this.#dirty;
  }

  /** Starts (a log) or stops (undefined) dirty page logging. */
  setDirtyLog(log: DirtyLog | undefined): void {
    this.#dirty = log;
  }

  /** Whether [addr, addr+length) is DMA-mapped with the access `write` needs. */
  covers(addr: bigint, length: number, write: boolean): boolean {
    try {
      this.#resolve(addr, length, write);
      return true;
    } catch {
      return false;
    }
  }

  /** Splits [addr, addr+length) into per-region pieces, checking coverage and permission. */
  #resolve(addr: bigint, length: number, writable: Writable): Piece[] {
    const pieces: Piece[] = [];
    let a = addr;
    let left = BigInt(length);
    const need = writable ? DmaMapFlags.WRITE : DmaMapFlags.READ;
    while (left > 0n) {
      const region = this.#table.find(a);
      if (!region) throw fault(addr, length, `0x${a.toString(16)} is not mapped`);
      if ((region.prot & need) === 0) {
        const at = `map at 0x${region.iova.toString(16)}`;
        if (need === DmaMapFlags.WRITE) {
          throw new GuestFault(Errno.EROFS, addr, length, `${at} is read-only`);
        }
        throw fault(addr, length, `${at} is not readable`);
      }
      const n = region.end - a < left ? region.end - a : left;
      pieces.push({ region, addr: a, length: Number(n) });
      a += n;
      left -= n;
    }
    return pieces;
  }

  map(addr: bigint, length: number, writable: Writable): Promise<GuestMapping> {
    return this.#mapRanges([{ addr, len: length }], writable);
  }

  /**
   * Maps several ranges as one: their pieces' segments in order, one bounce acquire for all
   * message-based bytes (holding part of the pool while waiting for more could deadlock against
   * another request doing the same), their guest bytes fetched concurrently.
   */
  async #mapRanges(ranges: readonly GuestRange[], writable: Writable): Promise<GuestMapping> {
    const pieces: Piece[] = [];
    let length = 0;
    for (const r of ranges) {
      if (r.len > 0) pieces.push(...this.#resolve(r.addr, r.len, writable));
      length += r.len;
    }
    let bounced = 0;
    for (const p of pieces) if (!p.region.view) bounced += p.length;
    const dma = bounced > 0 ? this.#message(pieces.find((p) => !p.region.view)!) : undefined;
    if (dma && bounced > dma.maxBuffer) {
      throw new GuestFault(
        Errno.E2BIG,
        ranges[0]?.addr ?? 0n,
        length,
        `${bounced} message-based bytes in one map, over the bounce limit`,
      );
    }
    for (const p of pieces) p.region.ref();
    const unref = () => pieces.forEach((p) => p.region.unref());
    let bounce: Uint8Array | undefined;
    try {
      bounce = dma ? await dma.acquire(bounced) : undefined;
      const { segments, copies } = await this.#segments(pieces, bounce, writable !== "overwrite");
      return new Mapping(segments, length, () => {
        if (writable) { for (const r of ranges) this.#dirty?.mark(r.addr, r.len); }
        // Posted: the bounce buffer (and the regions) are held until the client acknowledged
        // the writes, so the bounce limit bounds the data in flight too.
        const acks = writable ? copies.map((c) => dma!.write(c.addr, c.buf)) : [];
        const done = () => {
          if (bounce) dma!.releaseBuffer(bounce);
          unref();
        };
        if (acks.length === 0) return done();
        void Promise.allSettled(acks).then(done);
      });
    } catch (e) {
      if (bounce) dma!.releaseBuffer(bounce);
      unref();
      throw e;
    }
  }

  /**
   * Views for mmapped pieces; slices of `bounce` for message-based ones, filled from the guest
   * first unless the device overwrites them whole (a device that writes only part of the range
   * must not flush stale bytes over the rest). A slice that is not filled is zeroed: a reused
   * bounce buffer must not carry another request's bytes to the guest. The fills are in flight
   * together (one round trip to the client, not one per piece); all are waited for before an
   * error is passed on, so no reply lands in a buffer given back.
   */
  async #segments(pieces: Piece[], bounce: Uint8Array | undefined, fill: boolean) {
    const segments: Uint8Array[] = [];
    const copies: { buf: Uint8Array; addr: bigint; region: DmaRegion }[] = [];
    let used = 0;
    for (const p of pieces) {
      if (p.region.view) {
        segments.push(viewOf(p));
      } else {
        const buf = bounce!.subarray(used, used + p.length);
        used += p.length;
        if (!fill) buf.fill(0);
        // guest-contiguous pieces (e.g. consecutive pages of one buffer) move in one message:
        // their bounce slices are adjacent too
        const last = copies[copies.length - 1];
        if (last?.region === p.region && last.addr + BigInt(last.buf.length) === p.addr) {
          last.buf = bounce!.subarray(last.buf.byteOffset - bounce!.byteOffset, used);
        } else copies.push({ buf, addr: p.addr, region: p.region });
        segments.push(buf);
      }
    }
    const reads = fill ? copies.map((c) => this.#dma!.read(c.addr, c.buf)) : [];
    if (reads.length) {
      const results = await Promise.allSettled(reads);
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    }
    return { segments, copies };
  }

  async transfer(
    addr: bigint,
    length: number,
    writable: Writable,
    fn: (segments: readonly Uint8Array[], offset: number) => Promise<void> | void,
  ): Promise<void> {
    const pieces = this.#resolve(addr, length, writable);
    const chunk = pieces.every((p) => p.region.view) ? length : this.#message(pieces[0]).maxBuffer;
    await transferInChunks(this, addr, length, chunk, writable, fn);
  }

  async transferv(
    ranges: readonly GuestRange[],
    writable: Writable,
    fn: (segments: readonly Uint8Array[], offset: number) => Promise<void> | void,
  ): Promise<void> {
    const fast = this.#viewsNow(ranges, writable);
    if (fast) {
      // Every range in one mmapped map each (the usual case): one call with every segment, zero
      // copy, the maps held meanwhile.
      const [views, regions] = fast;
      for (const r of regions) r.ref();
      try {
        await fn(views, 0);
      } finally {
        if (writable) { for (const r of ranges) this.#dirty?.mark(r.addr, r.len); }
        for (const r of regions) r.unref();
      }
      return;
    }
    const pieces = ranges.flatMap((r) => r.len > 0 ? this.#resolve(r.addr, r.len, writable) : []);
    if (pieces.every((p) => p.region.view)) {
      // All mmapped: one call with every segment (zero copy), regions pinned meanwhile.
      for (const p of pieces) p.region.ref();
      try {
        await fn(pieces.map((p) => viewOf(p)), 0);
      } finally {
        if (writable) { for (const p of pieces) this.#dirty?.mark(p.addr, p.length); }
        for (const p of pieces) p.region.unref();
      }
      return;
    }
    // Message-based: as many whole ranges at a time as the bounce limit allows, so a request
    // of many small buffers moves with one backend call and one round of DMA messages, not one
    // per buffer; a range over the limit goes alone, chunk by chunk.
    const limit = this.#message(pieces.find((p) => !p.region.view)!).maxBuffer;
    let base = 0;
    for (let i = 0; i < ranges.length;) {
      if (ranges[i].len > limit) {
        const at = base;
        await this.transfer(ranges[i].addr, ranges[i].len, writable, (s, off) => fn(s, at + off));
        base += ranges[i++].len;
        continue;
      }
      const group: GuestRange[] = [];
      let bytes = 0;
      while (i < ranges.length && bytes + ranges[i].len <= limit) {
        bytes += ranges[i].len;
        group.push(ranges[i++]);
      }
      const m = await this.#mapRanges(group, writable);
      try {
        await fn(m.segments, base);
      } finally {
        await m.release();
      }
      base += bytes;
    }
  }

  /** The mmapped, live region holding all of [addr, addr+length) with `need`, if one does. */
  #mapped(addr: bigint, length: number, need: number): DmaRegion | undefined {
    let r = this.#last;
    if (!r || addr < r.iova || addr >= r.end || !r.live) {
      r = this.#table.find(addr);
      if (!r?.view) return undefined;
      this.#last = r;
    }
    if (!r.view || (r.prot & need) === 0 || addr + BigInt(length) > r.end) return undefined;
    return r;
  }

  /** Views of `ranges` when each lies in one mmapped map that allows the access, else undefined. */
  #viewsNow(
    ranges: readonly GuestRange[],
    writable: Writable,
  ): [Uint8Array[], DmaRegion[]] | undefined {
    const need = writable ? DmaMapFlags.WRITE : DmaMapFlags.READ;
    const views: Uint8Array[] = [];
    const regions: DmaRegion[] = [];
    for (const r of ranges) {
      if (r.len === 0) continue;
      const region = this.#mapped(r.addr, r.len, need);
      if (!region) return undefined;
      const o = Number(r.addr - region.iova);
      views.push(region.view!.subarray(o, o + r.len));
      if (regions[regions.length - 1] !== region) regions.push(region);
    }
    return [views, regions];
  }

  readNow(addr: bigint, dst: Uint8Array): boolean {
    const r = this.#mapped(addr, dst.length, DmaMapFlags.READ);
    if (!r) return false;
    fullFence(); // our earlier stores to guest RAM become visible before this load (see above)
    const o = Number(addr - r.iova);
    if (dst.length <= 8) { for (let i = 0; i < dst.length; i++) dst[i] = r.view![o + i]; }
    else dst.set(r.view!.subarray(o, o + dst.length));
    return true;
  }

  writeNow(addr: bigint, src: Uint8Array): boolean {
    const r = this.#mapped(addr, src.length, DmaMapFlags.WRITE);
    // a store must not overtake posted message writes issued before it: the slow path waits
    const dma = this.#dma;
    if (!r || (dma && (dma.writesPending ? dma.writesPending() : dma.settled()))) return false;
    const o = Number(addr - r.iova);
    if (src.length <= 8) { for (let i = 0; i < src.length; i++) r.view![o + i] = src[i]; }
    else r.view!.set(src, o);
    this.#dirty?.mark(addr, src.length);
    return true;
  }

  async read(addr: bigint, dst: Uint8Array): Promise<void> {
    fullFence(); // our earlier stores to guest RAM become visible before this load (see above)
    await this.#eachPiece(
      addr,
      dst,
      false,
      (p, part) => p.region.view ? part.set(viewOf(p)) : this.#message(p).read(p.addr, part),
    );
  }

  async write(addr: bigint, src: Uint8Array): Promise<void> {
    await this.#eachPiece(addr, src, true, (p, part) => {
      if (!p.region.view) {
        // Posted (see MessageDma.write); a failure is reported by the MessageDma itself.
        this.#message(p).write(p.addr, part).catch(() => {});
        return undefined;
      }
      const store = () => {
        if (!p.region.live) throw fault(addr, src.length, "unmapped while waiting");
        viewOf(p).set(part);
      };
      // Stores to mapped RAM must not overtake posted message writes issued before them.
      const posted = this.#dma?.settled();
      return posted ? posted.then(store) : store();
    });
    this.#dirty?.mark(addr, src.length);
  }

  /**
   * Calls `each` for the pieces of `[addr, addr + buf.length)` in order, with their parts of
   * `buf`. The regions are held across the waits for DMA replies: a DMA_UNMAP meanwhile must not
   * free a view used after them (table.ts).
   */
  async #eachPiece(
    addr: bigint,
    buf: Uint8Array,
    writable: Writable,
    each: (p: Piece, part: Uint8Array) => Promise<void> | void,
  ): Promise<void> {
    const pieces = this.#resolve(addr, buf.length, writable);
    for (const p of pieces) p.region.ref();
    try {
      let off = 0;
      for (const p of pieces) {
        const waiting = each(p, buf.subarray(off, off + p.length));
        if (waiting) await waiting;
        off += p.length;
      }
    } finally {
      for (const p of pieces) p.region.unref();
    }
  }

  /**
   * Until the returned function is called, no access waits for the client: what waits for a
   * DMA reply or for bounce space fails now with `reason`, and so does any new such wait
   * (mmapped memory is not affected). Used by a device reset, which must finish without the
   * client's help.
   */
  fence(reason: Error): () => void {
    return this.#dma?.fence?.(reason) ?? (() => {});
  }

  /**
   * Resolves when every posted write to message-based memory is acknowledged (undefined when
   * none is pending): interrupts wait for it, so the guest never sees one before the data.
   */
  settled(): Promise<void> | undefined {
    return this.#dma?.settled();
  }

  #message(p: Piece): MessageDma {
    if (!this.#dma) throw fault(p.addr, p.length, "message-based DMA is not available");
    return this.#dma;
  }
}

/** Zero-copy view of an mmapped piece. */
function viewOf(p: Piece): Uint8Array {
  const off = Number(p.addr - p.region.iova);
  return p.region.view!.subarray(off, off + p.length);
}

class Mapping implements GuestMapping {
  readonly segments: readonly Uint8Array[];
  readonly length: number;
  #done: (() => void) | undefined;

  constructor(segments: Uint8Array[], length: number, done: () => void) {
    this.segments = segments;
    this.length = length;
    this.#done = done;
  }

  release(): Promise<void> {
    const d = this.#done;
    this.#done = undefined;
    d?.(); // writes are posted: nothing to wait for here
    return Promise.resolve();
  }
}

function fault(addr: bigint, length: number, why: string): GuestFault {
  return new GuestFault(Errno.EFAULT, addr, length, why);
}
