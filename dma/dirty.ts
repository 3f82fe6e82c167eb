/**
 * Dirty page logging of device DMA (spec, "VFIO_DEVICE_FEATURE_DMA_LOGGING_START / STOP",
 * "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT"): while a client logs, every write the device makes
 * to guest memory marks the pages it touched (session memory calls {@link DirtyLog.mark} after
 * the bytes are in place, in either DMA mode); a report returns the pages of a range as a bitmap
 * at the page size the client asks for and forgets them.
 *
 * Pages are kept sparse (a set of page numbers at the tracking page size), so a report costs
 * the number of dirty pages, not the size of the range.
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";
import { DmaLoggingReportFeature, type DmaRange } from "../protocol/feature.ts";

/** Most ranges one DMA_LOGGING_START may name. */
export const MAX_LOG_RANGES = 4096;

/** Limits that come from the VERSION negotiation (`migration` capability). */
export interface DirtyLimits {
  /** Smallest tracking page size (the negotiated `pgsize`). */
  pgsize: bigint;
  /** Largest bitmap of one report in bytes (`max_bitmap_size`). */
  maxBitmapSize: number;
}

function isPow2(n: bigint): boolean {
  return n > 0n && (n & (n - 1n)) === 0n;
}

function einval(why: string): never {
  throw new ErrnoError(Errno.EINVAL, `dirty logging: ${why}`);
}

/** The dirty pages of one logging session. */
export class DirtyLog {
  /** Tracking granularity (a power of two, at least the negotiated pgsize). */
  readonly pageSize: bigint;
  readonly #shift: bigint;
  /** Logged ranges as [start, end), sorted; empty = every address. */
  readonly #ranges: readonly [bigint, bigint][];
  readonly #pages = new Set<number>();
  readonly #limits: DirtyLimits;

  /**
   * Starts logging `ranges` (none: everything) at about `hint` bytes per page: a power of two,
   * raised to the negotiated pgsize if smaller (the reply tells the client, spec "page_size ...
   * On output the device will return the page size it selected"). Throws EINVAL for bad hints
   * or ranges (empty, overlapping), E2BIG for more than {@link MAX_LOG_RANGES}.
   */
  constructor(hint: bigint, ranges: readonly DmaRange[], limits: DirtyLimits) {
    this.#limits = limits;
    if (hint !== 0n && !isPow2(hint)) einval(`page size ${hint} is not a power of two`);
    if (hint > 1n << 30n) einval(`page size ${hint} above 1 GiB`);
    this.pageSize = hint > limits.pgsize ? hint : limits.pgsize;
    let shift = 0n;
    while ((1n << shift) < this.pageSize) shift++;
    this.#shift = shift;
    if (ranges.length > MAX_LOG_RANGES) {
      throw new ErrnoError(Errno.E2BIG, `dirty logging: ${ranges.length} ranges`);
    }
    const sorted = ranges.map((r) => [r.iova, r.iova + r.length] as [bigint, bigint])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    sorted.forEach(([s, e], i) => {
      if (s === e) einval(`empty range at 0x${s.toString(16)}`);
      if (i > 0 && sorted[i - 1][1] > s) einval(`ranges overlap at 0x${s.toString(16)}`);
    });
    this.#ranges = sorted;
  }

  /** Number of dirty pages not yet reported. */
  get dirtyPages(): number {
    return this.#pages.size;
  }

  /** The device wrote [addr, addr+len): marks its pages inside the logged ranges. */
  mark(addr: bigint, len: number): void {
    if (len <= 0) return;
    const end = addr + BigInt(len);
    if (this.#ranges.length === 0) return this.#markPages(addr, end);
    for (const [s, e] of this.#ranges) {
      if (e <= addr) continue;
      if (s >= end) break;
      this.#markPages(addr > s ? addr : s, end < e ? end : e);
    }
  }

  #markPages(start: bigint, end: bigint): void {
    const last = Number((end - 1n) >> this.#shift);
    for (let p = Number(start >> this.#shift); p <= last; p++) this.#pages.add(p);
  }

  /**
   * The bitmap of [iova, iova+length) at `pageSize` bytes per bit (u64 words, bit n = page n),
   * clearing the reported pages. `pageSize` must be a power of two no smaller than the tracking
   * page size, the range aligned to it (EINVAL), and the bitmap within max_bitmap_size (E2BIG).
   */
  report(iova: bigint, length: bigint, pageSize: bigint): Uint8Array {
    if (!isPow2(pageSize)) einval(`report page size ${pageSize} is not a power of two`);
    if (pageSize < this.pageSize) {
      einval(`report page size ${pageSize} is finer than the tracking page size ${this.pageSize}`);
    }
    if (iova % pageSize !== 0n || length % pageSize !== 0n) {
      einval(
        `range [0x${iova.toString(16)}, +0x${length.toString(16)}) not aligned to ${pageSize}`,
      );
    }
    const size = DmaLoggingReportFeature.bitmapSize(length, pageSize);
    if (size > this.#limits.maxBitmapSize) {
      throw new ErrnoError(
        Errno.E2BIG,
        `dirty bitmap of ${size} bytes exceeds max_bitmap_size ${this.#limits.maxBitmapSize}`,
      );
    }
    const bitmap = new Uint8Array(size);
    const end = iova + length;
    for (const p of this.#pages) {
      const addr = BigInt(p) << this.#shift;
      if (addr < iova || addr >= end) continue; // pages are aligned to pageSize: inside or out
      const bit = Number((addr - iova) / pageSize);
      bitmap[bit >> 3] |= 1 << (bit & 7);
      this.#pages.delete(p);
    }
    return bitmap;
  }
}
