/**
 * A counter of outstanding work with waiters for the moment it drops to zero.
 *
 * @module
 */

/** Counts outstanding operations; {@link IdleTracker.whenIdle} resolves at zero. */
export class IdleTracker {
  #count = 0;
  #waiters: (() => void)[] = [];

  /** Outstanding operations. */
  get count(): number {
    return this.#count;
  }

  /** Starts one operation. */
  begin(): void {
    this.#count++;
  }

  /** Ends one operation; wakes the waiters at zero. */
  end(): void {
    if (this.#count === 0) throw new Error("IdleTracker.end without begin");
    if (--this.#count > 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once no operation is outstanding (at once if none is). */
  whenIdle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
