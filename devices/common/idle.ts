/**
 * A counter of outstanding device work with waiters for the moment it drops to zero: what reset
 * and pause wait for ("nothing touches guest memory anymore").
 *
 * @module
 */
import { WaitQueue } from "../../sys/waiters.ts";

/** Counts outstanding operations; {@link IdleTracker.whenIdle} resolves at zero. */
export class IdleTracker {
  #count = 0;
  readonly #idle = new WaitQueue();

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
    if (--this.#count === 0) this.#idle.wakeAll();
  }

  /** Resolves once no operation is outstanding (at once if none is). */
  whenIdle(): Promise<void> {
    return this.#count === 0 ? Promise.resolve() : this.#idle.wait();
  }
}
