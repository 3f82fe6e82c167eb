/**
 * The one interface device models use to reach guest memory, whatever the DMA mode (mmapped
 * fd-backed maps or message-based DMA_READ/DMA_WRITE through bounce buffers). Device code never
 * branches on the mode.
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";

/**
 * A device access to guest memory that cannot be made, through the guest's doing: the range is
 * not (fully) covered by DMA maps or the client refused a DMA message for it (EFAULT), the map
 * is read-only and the device wants to write (EROFS), or the range is larger than one mapping may
 * be (E2BIG). A device handles it like a PCI master abort (drop the frame, fail the request with
 * an I/O error status, stop the ring), never as a bug of its own: it recognises it with
 * `instanceof GuestFault`, whatever the DMA mode.
 */
export class GuestFault extends ErrnoError {
  /** Start of the guest range. */
  readonly addr: bigint;
  /** Length of the guest range. */
  readonly length: number;
  constructor(errno: number, addr: bigint, length: number, why: string, options?: ErrorOptions) {
    super(
      errno,
      `guest access [0x${addr.toString(16)}, +0x${length.toString(16)}): ${why}`,
      options,
    );
    this.name = "GuestFault";
    this.addr = addr;
    this.length = length;
  }
}

/**
 * A guest memory access that did not happen because the device is being paused for a migration
 * and nothing may wait for the client meanwhile (a VMM answers DMA requests from the loop that
 * waits for the pause's reply). The request that made it is not failed: the device captures it
 * (its state says so) and does it again when it runs, here or on the destination.
 */
export class DmaPaused extends ErrnoError {
  constructor() {
    super(Errno.ECANCELED, "device paused: guest memory access deferred");
    this.name = "DmaPaused";
  }
}

/** Whether `e`, or an error it was caused by, is a {@link DmaPaused}. */
export function isDmaPaused(e: unknown): boolean {
  for (let x = e, depth = 0; x instanceof Error && depth < 8; x = x.cause, depth++) {
    if (x instanceof DmaPaused) return true;
  }
  return false;
}

/** A guest range made accessible to the device. */
export interface GuestMapping {
  /**
   * The bytes of the range, in order. More than one segment when the range spans several DMA
   * maps. For mmapped maps these are zero-copy views of guest RAM; otherwise bounce buffers.
   */
  readonly segments: readonly Uint8Array[];
  /** Total length in bytes (sum of segment lengths). */
  readonly length: number;
  /**
   * Ends the device's access. For a writable mapping backed by bounce buffers this writes the
   * bytes back to the guest (DMA_WRITE). Must be called exactly once, also on error paths.
   * After it resolves the segments must not be touched.
   */
  release(): Promise<void>;
}

/**
 * Write access of a mapping: `true` when the device may write part of the range (the bytes it
 * leaves alone keep their guest content), `"overwrite"` when it writes every byte (message-based
 * memory then skips reading the guest's old bytes into the bounce buffer first).
 */
export type Writable = boolean | "overwrite";

/** A guest address range. */
export interface GuestRange {
  addr: bigint;
  len: number;
}

/** Guest physical memory as seen by one device. */
export interface GuestMemory {
  /**
   * Makes [addr, addr+length) accessible. `writable` asks for write access (the map must allow
   * it). Throws {@link GuestFault} when the range is not fully covered by DMA maps (EFAULT) or
   * the permissions do not allow the access (EROFS for a write to a read-only map). May wait
   * (e.g. for bounce-buffer space) but never fails for lack of it. For message-based memory a
   * single map is limited to the bounce-buffer size (GuestFault E2BIG beyond it): large data goes
   * through {@link transfer}.
   */
  map(addr: bigint, length: number, writable: Writable): Promise<GuestMapping>;
  /**
   * Moves a possibly large range in pieces: calls `fn` with the segments of consecutive chunks
   * of [addr, addr+length) and the chunk's offset in the range, one chunk mapped at a time, and
   * releases each chunk (flushing writes) before mapping the next. For mmapped memory the whole
   * range is one zero-copy chunk; for message-based memory chunks respect the bounce-buffer
   * limit. Use this for data buffers; a device must not hold another mapping while it waits
   * here (that could wait for bounce space it holds itself).
   */
  transfer(
    addr: bigint,
    length: number,
    writable: Writable,
    fn: (segments: readonly Uint8Array[], offset: number) => Promise<void> | void,
  ): Promise<void>;
  /**
   * {@link transfer} over several ranges as one byte stream (a scatter-gather list): for
   * mmapped memory `fn` is called once with the segments of every range, so a device can move
   * a whole request with one vectored call; otherwise range by range, chunk by chunk. The
   * offset passed to `fn` counts from the start of the first range.
   */
  transferv(
    ranges: readonly GuestRange[],
    writable: Writable,
    fn: (segments: readonly Uint8Array[], offset: number) => Promise<void> | void,
  ): Promise<void>;
  /** Copies guest bytes at `addr` into `dst` (convenience for small structures). */
  read(addr: bigint, dst: Uint8Array): Promise<void>;
  /** Copies `src` into guest memory at `addr` (convenience for small structures). */
  write(addr: bigint, src: Uint8Array): Promise<void>;
  /**
   * {@link read} done at once when it can be: the range lies in one mmapped DMA map that
   * allows it. Returns false (and touches nothing) otherwise: use {@link read}. The fast path of
   * ring and descriptor accesses, with no promise and no wait.
   */
  readNow?(addr: bigint, dst: Uint8Array): boolean;
  /**
   * {@link write} done at once when it can be (mmapped, writable, and no posted message write
   * still in flight that it would overtake); false otherwise: use {@link write}.
   */
  writeNow?(addr: bigint, src: Uint8Array): boolean;
}

/**
 * A GuestMemory that forwards every call to whatever `current()` returns at call time: for
 * holders whose memory changes under them (the connected client's, after a reconnect).
 */
export function forwardingMemory(current: () => GuestMemory): GuestMemory {
  return {
    map: (addr, length, writable) => current().map(addr, length, writable),
    transfer: (addr, length, writable, fn) => current().transfer(addr, length, writable, fn),
    transferv: (ranges, writable, fn) => current().transferv(ranges, writable, fn),
    read: (addr, dst) => current().read(addr, dst),
    write: (addr, src) => current().write(addr, src),
    readNow: (addr, dst) => current().readNow?.(addr, dst) ?? false,
    writeNow: (addr, src) => current().writeNow?.(addr, src) ?? false,
  };
}

/** Guest memory that is not there (no client connected): every access fails with EFAULT. */
export function absentMemory(why: string): GuestMemory {
  const fail = (addr: bigint, length: number) =>
    Promise.reject(new GuestFault(Errno.EFAULT, addr, length, why));
  return {
    map: (addr, length) => fail(addr, length),
    transfer: (addr, length) => fail(addr, length),
    transferv: (ranges) => fail(ranges[0]?.addr ?? 0n, ranges.reduce((n, r) => n + r.len, 0)),
    read: (addr, dst) => fail(addr, dst.length),
    write: (addr, src) => fail(addr, src.length),
  };
}

/**
 * {@link GuestMemory.transfer} as consecutive mappings of at most `chunk` bytes: each is mapped,
 * handed to `fn` with its offset, and released (writes flushed) before the next.
 */
export async function transferInChunks(
  mem: Pick<GuestMemory, "map">,
  addr: bigint,
  length: number,
  chunk: number,
  writable: Writable,
  fn: (segments: readonly Uint8Array[], offset: number) => Promise<void> | void,
): Promise<void> {
  for (let off = 0; off < length; off += chunk) {
    const m = await mem.map(addr + BigInt(off), Math.min(chunk, length - off), writable);
    try {
      await fn(m.segments, off);
    } finally {
      await m.release();
    }
  }
}

/**
 * {@link GuestMemory.transferv} done range by range with `transfer` (offsets continue across
 * ranges): the general path, for memory that cannot hand out every range at once.
 */
export async function transferEach(
  mem: Pick<GuestMemory, "transfer">,
  ranges: readonly GuestRange[],
  writable: Writable,
  fn: (segments: readonly Uint8Array[], offset: number) => Promise<void> | void,
): Promise<void> {
  let base = 0;
  for (const r of ranges) {
    const at = base;
    if (r.len > 0) await mem.transfer(r.addr, r.len, writable, (segs, off) => fn(segs, at + off));
    base += r.len;
  }
}
