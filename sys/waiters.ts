/**
 * Waiting, once: the queue behind every "wait until ..." of vfud (bounce buffers and the DMA read
 * window under their limits, posted DMA writes settling, device work going idle, a backend's send
 * queue draining). Waiters are served first come, first served; each may carry what it waits for
 * (a byte count); and all of them can be failed at once (the client went away), so no wait
 * outlives its cause.
 *
 * Pure: no FFI, no timers. Every layer may import it.
 *
 * @module
 */

interface Waiter<T, D> {
  data: D;
  resolve: (value: T) => void;
  reject: (err: Error) => void;
}

/**
 * Callers waiting for an event, in arrival order. `T` is what a woken waiter gets, `D` what each
 * waiter says it waits for (see {@link peek}).
 */
export class WaitQueue<T = void, D = void> {
  #waiters: Waiter<T, D>[] = [];

  /** Waiters not yet woken or failed. */
  get length(): number {
    return this.#waiters.length;
  }

  /** What the oldest waiter waits for (undefined when nobody waits). */
  peek(): D | undefined {
    return this.#waiters[0]?.data;
  }

  /** Queues a waiter; the promise settles with a later {@link wakeOne}/{@link wakeAll}/{@link failAll}. */
  wait(data: D): Promise<T> {
    return new Promise((resolve, reject) => this.#waiters.push({ data, resolve, reject }));
  }

  /** Wakes the oldest waiter with `value`; false when nobody waits. */
  wakeOne(value: T): boolean {
    const w = this.#waiters.shift();
    w?.resolve(value);
    return w !== undefined;
  }

  /** Wakes every waiter queued now with `value`. */
  wakeAll(value: T): void {
    for (const w of this.#waiters.splice(0)) w.resolve(value);
  }

  /** Fails every waiter queued now with `err`. */
  failAll(err: Error): void {
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }
}

/**
 * A FIFO semaphore counted in units (bytes): takes that do not fit wait in arrival order, and a
 * take never overtakes an older one that waits (a large take is not starved by small ones).
 * Callers never take more than the size at once.
 */
export class FifoBudget {
  /** Units in all. */
  readonly size: number;
  #free: number;
  readonly #waiters = new WaitQueue<void, number>();

  constructor(size: number) {
    this.size = size;
    this.#free = size;
  }

  /** Units not taken. */
  get free(): number {
    return this.#free;
  }

  /** Takes waiting for room. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Takes `n` units now if they fit and nobody waits before us; false otherwise. */
  tryTake(n: number): boolean {
    if (this.#waiters.length > 0 || n > this.#free) return false;
    this.#free -= n;
    return true;
  }

  /** Resolves once `n` units are taken for the caller (at once when {@link tryTake} would). */
  take(n: number): Promise<void> {
    return this.tryTake(n) ? Promise.resolve() : this.#waiters.wait(n);
  }

  /** Gives `n` units back; the oldest waiters get theirs while they fit. */
  give(n: number): void {
    this.#free += n;
    for (let next = this.#waiters.peek(); next !== undefined && next <= this.#free;) {
      this.#free -= next;
      this.#waiters.wakeOne();
      next = this.#waiters.peek();
    }
  }

  /** Fails every waiting take (what is taken comes back from its holders). */
  failWaiters(err: Error): void {
    this.#waiters.failAll(err);
  }
}
