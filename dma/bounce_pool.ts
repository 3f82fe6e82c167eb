/**
 * Bounce buffers for message-based DMA under a total size limit. Any number of buffers may be
 * out at once while their sizes add up to at most the limit; an acquire that does not fit waits
 * in FIFO order (no failure, and a large request cannot be starved by a stream of small ones
 * overtaking it). Callers never ask for more than the limit in one acquire (they split), and
 * never hold one buffer while waiting for another, so waiting cannot deadlock.
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";
import { FifoBudget } from "../sys/waiters.ts";

/** A size-limited pool of bounce buffers. */
export class BouncePool {
  /** Total bytes that may be out at once. */
  readonly limit: number;
  readonly #budget: FifoBudget;
  #peak = 0;
  #out = new Set<Uint8Array>();
  /** Reused buffers by size (the common sizes repeat: chunk-sized data, small headers). */
  #free = new Map<number, Uint8Array[]>();
  #freeBytes = 0;

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`bounce limit ${limit}`);
    this.limit = limit;
    this.#budget = new FifoBudget(limit);
  }

  /** Bytes currently handed out (or promised to a waiter that was just woken). */
  get inUse(): number {
    return this.limit - this.#budget.free;
  }

  /** Highest {@link inUse} seen. */
  get peak(): number {
    return this.#peak;
  }

  /** Acquires waiting for room. */
  get waiting(): number {
    return this.#budget.waiting;
  }

  /** Gets a zeroed-or-reused buffer of exactly `size` bytes, waiting for room if needed. */
  acquire(size: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(size) || size < 1 || size > this.limit) {
      return Promise.reject(
        new ErrnoError(Errno.E2BIG, `bounce buffer of ${size} bytes (limit ${this.limit})`),
      );
    }
    if (this.#budget.tryTake(size)) return Promise.resolve(this.#take(size));
    return this.#budget.take(size).then(() => this.#take(size));
  }

  /** A buffer now if one fits without waiting (and nobody waits before us), else undefined. */
  tryAcquire(size: number): Uint8Array | undefined {
    if (!Number.isSafeInteger(size) || size < 1 || size > this.limit) return undefined;
    return this.#budget.tryTake(size) ? this.#take(size) : undefined;
  }

  /** A buffer of `size` bytes, already counted in the budget. */
  #take(size: number): Uint8Array {
    this.#peak = Math.max(this.#peak, this.inUse);
    const cached = this.#free.get(size)?.pop();
    if (cached) this.#freeBytes -= size;
    const buf = cached ?? new Uint8Array(size);
    this.#out.add(buf);
    return buf;
  }

  /** Returns a buffer; wakes waiters, oldest first, while they fit. */
  release(buf: Uint8Array): void {
    if (!this.#out.delete(buf)) throw new Error("bounce buffer released twice or foreign");
    if (this.#freeBytes + buf.length <= this.limit) {
      const list = this.#free.get(buf.length) ?? [];
      list.push(buf);
      this.#free.set(buf.length, list);
      this.#freeBytes += buf.length;
    }
    this.#budget.give(buf.length);
  }

  /** Fails every waiter (the client is gone); buffers out are returned by their holders. */
  failWaiters(e: Error): void {
    this.#budget.failWaiters(e);
  }
}
