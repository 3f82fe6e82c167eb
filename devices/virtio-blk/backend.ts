/**
 * The storage interface of the block device and an in-memory implementation for tests.
 *
 * @module
 */

/**
 * Backing storage of a block device. Vectored calls receive the guest's buffers directly (views
 * of mmapped guest RAM where possible): implementations must finish using them before the
 * returned promise settles and must not keep references.
 */
export interface BlockBackend {
  /** Size in bytes. */
  readonly size: bigint;
  /** True if writes are refused. */
  readonly readonly: boolean;
  /** Fills `segs`, in order, from the bytes at `offset`. */
  readv(offset: bigint, segs: readonly Uint8Array[]): Promise<void> | void;
  /** Stores `segs`, in order, at `offset`. */
  writev(offset: bigint, segs: readonly Uint8Array[]): Promise<void> | void;
  /**
   * Makes durable every write that completed before the call, and every write still in flight
   * when it was called (a FLUSH covers the writes issued before it, virtio 1.x §5.2.6.1).
   */
  flush(): Promise<void> | void;
  /** Logical block size to advertise (VIRTIO_BLK_F_BLK_SIZE); 512 when absent. */
  readonly blockSize?: number;
  /** Deallocates [offset, offset+length): later reads return zeros (DISCARD). */
  discard?(offset: bigint, length: bigint): Promise<void> | void;
  /**
   * Makes [offset, offset+length) read as zeros (WRITE_ZEROES); `unmap` allows deallocating
   * the range instead of writing it.
   */
  writeZeroes?(offset: bigint, length: bigint, unmap: boolean): Promise<void> | void;
  /** Frees host resources. */
  close(): void;
}

/** Options of {@link MemoryBackend}. */
export interface MemoryBackendOptions {
  readonly?: boolean;
  /** The logical block size to report (what an O_DIRECT file would need); default 512. */
  blockSize?: number;
}

/** A {@link BlockBackend} over a byte array; counts flushes for tests. */
export class MemoryBackend implements BlockBackend {
  /** The stored bytes. */
  readonly data: Uint8Array;
  readonly readonly: boolean;
  readonly blockSize?: number;
  /** Number of completed flush() calls. */
  flushes = 0;
  /** True after close(). */
  closed = false;

  /** `init` is a size in bytes (zero-filled) or the initial contents (used as is). */
  constructor(init: number | Uint8Array, opts: MemoryBackendOptions = {}) {
    this.data = typeof init === "number" ? new Uint8Array(init) : init;
    this.readonly = opts.readonly ?? false;
    this.blockSize = opts.blockSize;
  }

  get size(): bigint {
    return BigInt(this.data.length);
  }

  #range(offset: bigint, segs: readonly Uint8Array[]): number {
    let len = 0;
    for (const s of segs) len += s.length;
    if (this.closed) throw new Error("backend closed");
    if (offset < 0n || offset + BigInt(len) > this.size) throw new RangeError("out of range");
    return Number(offset);
  }

  readv(offset: bigint, segs: readonly Uint8Array[]): void {
    let at = this.#range(offset, segs);
    for (const s of segs) {
      s.set(this.data.subarray(at, at + s.length));
      at += s.length;
    }
  }

  writev(offset: bigint, segs: readonly Uint8Array[]): void {
    if (this.readonly) throw new Error("read-only backend");
    let at = this.#range(offset, segs);
    for (const s of segs) {
      this.data.set(s, at);
      at += s.length;
    }
  }

  flush(): void {
    this.flushes++;
  }

  discard(offset: bigint, length: bigint): void {
    this.writeZeroes(offset, length);
  }

  writeZeroes(offset: bigint, length: bigint): void {
    if (this.readonly) throw new Error("read-only backend");
    if (this.closed) throw new Error("backend closed");
    if (offset < 0n || length < 0n || offset + length > this.size) {
      throw new RangeError("out of range");
    }
    this.data.fill(0, Number(offset), Number(offset + length));
  }

  close(): void {
    this.closed = true;
  }
}
