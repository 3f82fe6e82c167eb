/**
 * The DMA map table of one session (spec, "VFIO_USER_DMA_MAP" / "VFIO_USER_DMA_UNMAP").
 * Regions that come with an fd are mmapped once and accessed through zero-copy views; regions
 * without one are recorded and reached through DMA_READ/DMA_WRITE messages.
 *
 * A region is reference-counted by the requests that use it. DMA_UNMAP (or the client leaving)
 * removes it from the table at once, so no new access can find it, and is acknowledged without
 * waiting for anyone (a client serves our DMA requests from the loop that waits for its reply).
 * Requests still holding the region keep a valid view, but of private zero pages put over the
 * client's memory in the same instant (mmap MAP_FIXED): nothing reaches the client's pages after
 * the acknowledgement, and nothing touches unmapped memory. The last user unmaps it.
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";
import { DmaMapFlags } from "../protocol/dma.ts";
import { closeFd, errno, libc, SysError } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";

/**
 * The most DMA maps a session may hold: every fd-backed map is one mmap, and the kernel allows a
 * process `vm.max_map_count` mappings (65530 by default) for everything, V8's heap and the
 * runtime included; a process that runs out aborts in V8 the next time it needs one. A quarter of
 * the count leaves the rest to the runtime; never more than the protocol's 65535.
 */
export function defaultMaxDmaMaps(): number {
  let count = 65530;
  try {
    count = Number(Deno.readTextFileSync("/proc/sys/vm/max_map_count").trim()) || count;
  } catch { /* no /proc: the kernel default */ }
  return Math.max(1, Math.min(65535, Math.floor(count / 4)));
}

/** One DMA region. */
export class DmaRegion {
  readonly iova: bigint;
  readonly size: bigint;
  readonly prot: number;
  /** Set when the client passed an fd that could not be sealed: reached by DMA messages. */
  unsealed = false;
  /** Zero-copy view of the whole region when it was mmapped; undefined for message-based ones. */
  readonly view: Uint8Array | undefined;
  #ptr: Deno.PointerValue;
  #refs = 0;
  #removed = false;

  constructor(iova: bigint, size: bigint, prot: number, ptr: Deno.PointerValue) {
    this.iova = iova;
    this.size = size;
    this.prot = prot;
    this.#ptr = ptr;
    this.view = ptr === null ? undefined : new Uint8Array(
      Deno.UnsafePointerView.getArrayBuffer(ptr, Number(size)),
    );
  }

  /** One past the last address. */
  get end(): bigint {
    return this.iova + this.size;
  }

  /** True while a DMA_UNMAP has not removed it. */
  get live(): boolean {
    return !this.#removed;
  }

  /** Number of in-flight users. */
  get refs(): number {
    return this.#refs;
  }

  /** Takes a reference for an in-flight access. */
  ref(): void {
    this.#refs++;
  }

  /** Drops a reference; unmaps the memory once removed and unused. */
  unref(): void {
    this.#refs--;
    this.#maybeUnmap();
  }

  /**
   * Removes the region from service. Unused memory is unmapped now; memory a request still
   * holds is cut off from the client (replaced by private zero pages) and unmapped when the last
   * user is done.
   */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    if (this.#refs > 0 && this.#ptr !== null) revoke(this.#ptr, this.size);
    this.#maybeUnmap();
  }

  #maybeUnmap(): void {
    if (this.#removed && this.#refs === 0 && this.#ptr !== null) {
      libc.munmap(this.#ptr, this.size);
      this.#ptr = null;
    }
  }
}

/** The DMA regions of a session, sorted by address, non-overlapping. */
export class DmaTable {
  #regions: DmaRegion[] = [];
  readonly #maxMaps: number;

  constructor(maxMaps = 65535) {
    this.#maxMaps = maxMaps;
  }

  /** All live regions in address order. */
  get regions(): readonly DmaRegion[] {
    return this.#regions;
  }

  /**
   * Adds a region. With `fd` the region is mmapped (the fd is always closed before returning,
   * also on errors) if the file cannot shrink under us (see {@link sealedAgainstShrinking});
   * otherwise, and without an fd, it is message-based.
   */
  map(iova: bigint, size: bigint, offset: bigint, prot: number, fd: number | undefined): DmaRegion {
    try {
      this.#validate(iova, size, prot);
      const mmappable = fd !== undefined && sealedAgainstShrinking(fd);
      const ptr = mmappable ? mmapRegion(fd, size, offset, prot) : null;
      const region = new DmaRegion(iova, size, prot, ptr);
      if (fd !== undefined && !mmappable) region.unsealed = true;
      this.#regions.splice(this.#insertIndex(iova), 0, region);
      return region;
    } finally {
      if (fd !== undefined) closeFd(fd);
    }
  }

  #validate(iova: bigint, size: bigint, prot: number): void {
    if (size === 0n) throw new ErrnoError(Errno.EINVAL, "DMA_MAP of size 0");
    if (iova + size > (1n << 64n)) throw new ErrnoError(Errno.EINVAL, "DMA_MAP wraps");
    if ((prot & ~(DmaMapFlags.READ | DmaMapFlags.WRITE)) !== 0) {
      throw new ErrnoError(Errno.EINVAL, `DMA_MAP flags 0x${prot.toString(16)}`);
    }
    if (this.#regions.length >= this.#maxMaps) {
      throw new ErrnoError(Errno.ENOSPC, `more than ${this.#maxMaps} DMA maps`);
    }
    const i = this.#insertIndex(iova);
    const prev = this.#regions[i - 1], next = this.#regions[i];
    if ((prev && prev.end > iova) || (next && next.iova < iova + size)) {
      throw new ErrnoError(
        Errno.EEXIST,
        `DMA_MAP [0x${iova.toString(16)}, +0x${size.toString(16)}) overlaps an existing map`,
      );
    }
  }

  /** Removes the region that exactly matches [iova, iova+size); returns it. */
  unmap(iova: bigint, size: bigint): DmaRegion {
    const i = this.#regions.findIndex((r) => r.iova === iova && r.size === size);
    if (i < 0) {
      throw new ErrnoError(
        Errno.ENOENT,
        `DMA_UNMAP [0x${iova.toString(16)}, +0x${size.toString(16)}) matches no map`,
      );
    }
    const [r] = this.#regions.splice(i, 1);
    r.remove();
    return r;
  }

  /** Removes every region (DMA_UNMAP with the ALL flag, or client disconnect). */
  clear(): void {
    for (const r of this.#regions) r.remove();
    this.#regions = [];
  }

  /** The region containing `addr`, if any. */
  find(addr: bigint): DmaRegion | undefined {
    let lo = 0, hi = this.#regions.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.#regions[mid];
      if (addr < r.iova) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  #insertIndex(iova: bigint): number {
    let lo = 0, hi = this.#regions.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#regions[mid].iova < iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * True when the file behind `fd` can never shrink, so no mmapped page of it can vanish: touching
 * a page past the end of its file raises SIGBUS, which no request can survive (it kills the
 * daemon). A memfd sealed with F_SEAL_SHRINK qualifies (QEMU's memory-backend-memfd seals its
 * memfds by default); a memfd that allows sealing gets the seal from us. Other files (no seals,
 * or F_SEAL_SEAL without F_SEAL_SHRINK) could be truncated by the client at any time.
 */
export function sealedAgainstShrinking(fd: number): boolean {
  const seals = libc.fcntl(fd, C.F_GET_SEALS, 0);
  if (seals < 0) return false; // not a memfd/shmem file: sealing is not supported
  if (seals & C.F_SEAL_SHRINK) return true;
  if (seals & C.F_SEAL_SEAL) return false;
  return libc.fcntl(fd, C.F_ADD_SEALS, C.F_SEAL_SHRINK) === 0;
}

/** Atomically replaces the mapping at `ptr` with private anonymous zero pages. */
function revoke(ptr: Deno.PointerValue, size: bigint): void {
  const flags = C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_FIXED;
  const r = libc.mmap(ptr, size, C.PROT_READ | C.PROT_WRITE, flags, -1, 0n);
  if (r === null || Deno.UnsafePointer.value(r) !== Deno.UnsafePointer.value(ptr)) {
    // Without the replacement the holders would write into the client's memory: nothing is
    // safe to continue with (out of memory for page tables is the only known cause).
    throw new SysError("mmap MAP_FIXED (revoking an unmapped DMA region)", errno());
  }
}

function mmapRegion(fd: number, size: bigint, offset: bigint, prot: number): Deno.PointerValue {
  // Touching a mapping beyond the end of its file raises SIGBUS, which would kill the daemon:
  // refuse maps that reach past the end (the file is sealed against shrinking afterwards).
  const fileSize = libc.lseek(fd, 0n, 2 /* SEEK_END */);
  if (fileSize >= 0n && offset + size > fileSize) {
    throw new ErrnoError(
      Errno.EINVAL,
      `DMA_MAP: fd range [0x${offset.toString(16)}, +0x${size.toString(16)}) passes the end of ` +
        `the file (0x${fileSize.toString(16)})`,
    );
  }
  const p = (prot & DmaMapFlags.READ ? C.PROT_READ : 0) |
    (prot & DmaMapFlags.WRITE ? C.PROT_WRITE : 0);
  const ptr = libc.mmap(null, size, p, C.MAP_SHARED, fd, offset);
  if (ptr === null || Deno.UnsafePointer.value(ptr) === 0xffffffffffffffffn) {
    const e = new SysError("mmap", errno());
    throw new ErrnoError(e.errno || Errno.EINVAL, `DMA_MAP: ${e.message}`);
  }
  return ptr;
}
