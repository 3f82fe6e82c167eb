/**
 * Drives one split virtqueue: serializes avail-ring processing (kicks that arrive while a batch
 * runs are remembered, never lost), runs requests concurrently, publishes completions in batches
 * and tracks everything in flight so reset and quiesce can wait for it.
 *
 * Requests whose guest memory access was deferred by a migration pause ({@link DmaPaused}) are
 * captured, not failed: their heads are kept (and saved with the queue) and run again when the
 * queue runs, here or on the destination. Their used entries were never published, so the
 * driver sees each request complete once.
 *
 * @module
 */
import { isDmaPaused } from "../../dma/guest_memory.ts";
import type { DescChain } from "./descriptors.ts";
import { IdleTracker } from "../common/idle.ts";
import type { SplitQueue, UsedElem } from "./virtqueue.ts";

/** Callbacks of a {@link QueueRunner}. */
export interface RunnerHooks {
  /** Processes a chain; resolves with the used length. */
  handle(chain: DescChain): Promise<number>;
  /** How many chains the device can take now (default: all); it kicks when that grows. */
  ready?(): number;
  /** The driver wants an interrupt for newly used buffers. */
  notify(): void;
  /** The queue broke (malformed ring, unreachable memory, failed request): needs reset. */
  fail(err: unknown): void;
}

/** Processing state of one enabled virtqueue. */
export class QueueRunner {
  readonly #q: SplitQueue;
  readonly #hooks: RunnerHooks;
  readonly #work = new IdleTracker();
  #inFlight = 0;
  #kicked = false;
  #draining = false;
  #publishing = false;
  #pending: UsedElem[] = [];
  #pauses = 0;
  #stopped = false;
  #broken = false;
  /** Heads taken from the avail ring whose requests must run again (see the module doc). */
  #captured: number[] = [];

  /**
   * `broken` restores a queue that had failed before it was saved; `captured` the heads of
   * requests to run again.
   */
  constructor(queue: SplitQueue, hooks: RunnerHooks, broken = false, captured: number[] = []) {
    this.#q = queue;
    this.#hooks = hooks;
    this.#broken = broken;
    this.#captured = [...captured];
    if (captured.length) this.#kicked = true; // run them once the queue may run
  }

  /** Heads of captured requests (taken from the avail ring, to run again). */
  get captured(): readonly number[] {
    return this.#captured;
  }

  /** The ring state (for tests and diagnostics). */
  get queue(): SplitQueue {
    return this.#q;
  }

  /** True after a fatal error; the queue stays dead until reset. */
  get broken(): boolean {
    return this.#broken;
  }

  /** True when nothing is being processed or published. */
  get idle(): boolean {
    return this.#work.count === 0;
  }

  /** The driver notified the queue (§4.1.5.2). */
  kick(): void {
    if (this.#stopped || this.#broken) return;
    this.#kicked = true;
    if (!this.#draining && this.#pauses === 0) this.#startDrain();
  }

  /** Stops taking new buffers for good (reset); in-flight requests still complete. */
  stop(): Promise<void> {
    this.#stopped = true;
    return this.#work.whenIdle();
  }

  /**
   * Stops taking new buffers until the matching {@link resume}; resolves when nothing is in
   * flight. Buffers already taken from the avail ring are still processed.
   */
  pause(): Promise<void> {
    this.#pauses++;
    return this.#work.whenIdle();
  }

  /** Undoes one {@link pause}; processes kicks that arrived meanwhile. */
  resume(): void {
    if (this.#pauses > 0) this.#pauses--;
    if (this.#kicked && !this.#draining) this.kick();
  }

  #canRun(): boolean {
    return this.#pauses === 0 && !this.#stopped && !this.#broken;
  }

  #startDrain(): void {
    this.#draining = true;
    this.#work.begin();
    this.#drain().catch((err) => this.#fail(err)).finally(() => {
      this.#draining = false;
      this.#work.end();
      // A completion may have asked for another drain after the loop's last check but before
      // this callback (both run as microtasks): it saw #draining still set and left it to us.
      if (this.#kicked && this.#canRun() && this.#inFlight < this.#q.size) this.#startDrain();
    });
  }

  /**
   * Pops batches until no kick is pending and the avail ring is empty; captured requests run
   * first. A deferred access (migration pause) ends the drain: heads already taken are captured.
   */
  async #drain(): Promise<void> {
    try {
      while (this.#kicked && this.#canRun()) {
        const room = Math.min(this.#q.size - this.#inFlight, this.#hooks.ready?.() ?? Infinity);
        if (room <= 0) {
          // Queue full: still kicked, a completion restarts us. Nothing for the device to do:
          // its own kick does.
          if (this.#inFlight < this.#q.size) this.#kicked = false;
          return;
        }
        this.#kicked = false;
        // (ring accesses are synchronous on mmapped guest RAM: awaited only when they are not)
        const again = this.#captured.splice(0, room);
        if (again.length) await this.#startAll(again);
        const popped = this.#q.popAvailable(room - again.length);
        const started = this.#startAll(popped instanceof Promise ? await popped : popped);
        if (started) await started;
        const set = this.#q.setAvailEvent();
        if (set) await set;
        const idx = this.#q.availIdx();
        if ((idx instanceof Promise ? await idx : idx) !== this.#q.lastAvail) this.#kicked = true;
      }
    } catch (err) {
      if (!isDmaPaused(err)) throw err;
      this.#kicked = true; // look again when resumed
    }
  }

  /**
   * Starts the requests of `heads`; on a deferred access the rest are captured. Synchronous
   * while descriptor chains can be read at once; returns a promise once one cannot.
   */
  #startAll(heads: number[], from = 0): Promise<void> | undefined {
    for (let i = from; i < heads.length; i++) {
      if (this.#broken || this.#stopped) return; // a reset discards taken buffers
      let chain: DescChain | Promise<DescChain>;
      try {
        chain = this.#q.readChain(heads[i]);
      } catch (err) {
        if (isDmaPaused(err)) this.#captured.push(...heads.slice(i));
        throw err;
      }
      if (chain instanceof Promise) return this.#startRest(chain, heads, i);
      this.#start(chain);
    }
    return undefined;
  }

  /**
   * The chains of heads[i..] read together (message-based guest memory: their reads overlap
   * instead of taking one round trip after another), started in order up to the first that
   * failed; from there on they are captured (deferred access) or the error is passed on.
   */
  async #startRest(first: Promise<DescChain>, heads: number[], i: number): Promise<void> {
    const reads = [first];
    for (let k = i + 1; k < heads.length; k++) {
      try {
        const c = this.#q.readChain(heads[k]);
        reads.push(c instanceof Promise ? c : Promise.resolve(c));
      } catch (err) {
        reads.push(Promise.reject(err));
      }
    }
    const chains = await Promise.allSettled(reads);
    for (let k = 0; k < chains.length; k++) {
      if (this.#broken || this.#stopped) return;
      const c = chains[k];
      if (c.status === "fulfilled") {
        this.#start(c.value);
        continue;
      }
      if (isDmaPaused(c.reason)) this.#captured.push(...heads.slice(i + k));
      throw c.reason;
    }
  }

  #start(chain: DescChain): void {
    this.#inFlight++;
    this.#work.begin();
    let request: Promise<number>;
    try {
      request = this.#hooks.handle(chain);
    } catch (err) {
      request = Promise.reject(err);
    }
    request.then(
      (len) => this.#complete({ id: chain.head, len }),
      (err) => isDmaPaused(err) ? this.#capture(chain.head) : this.#fail(err),
    ).finally(() => {
      this.#inFlight--;
      this.#work.end();
      if (this.#kicked && !this.#draining && this.#canRun()) this.#startDrain();
    });
  }

  /** A request's access was deferred: it runs again later (nothing of it was published). */
  #capture(head: number): void {
    if (this.#broken || this.#stopped) return;
    this.#captured.push(head);
    this.#kicked = true;
  }

  #complete(elem: UsedElem): void {
    if (this.#broken) return;
    this.#pending.push(elem);
    if (!this.#publishing) this.#startPublish();
  }

  #startPublish(): void {
    this.#publishing = true;
    this.#work.begin();
    this.#publish().catch((err) => this.#fail(err)).finally(() => {
      this.#publishing = false;
      this.#work.end();
      // Same race as in #startDrain: a request completing between the publish loop's last
      // check and this callback queued its element while #publishing was still set.
      if (this.#pending.length > 0 && !this.#broken) this.#startPublish();
    });
  }

  /** Writes pending used elements in batches and interrupts when the driver asks (§2.7.8). */
  async #publish(): Promise<void> {
    while (this.#pending.length > 0 && !this.#broken) {
      const batch = this.#pending;
      this.#pending = [];
      const pushed = this.#q.pushUsed(batch);
      if (pushed) await pushed;
      let notify = true; // if the driver's wish cannot be read now, an interrupt too many is safe
      try {
        const wish = this.#q.shouldNotify();
        notify = wish instanceof Promise ? await wish : wish;
      } catch (err) {
        if (!isDmaPaused(err)) throw err;
      }
      if (notify) this.#hooks.notify();
    }
  }

  #fail(err: unknown): void {
    if (this.#broken) return;
    this.#broken = true;
    this.#pending = [];
    this.#hooks.fail(err);
  }
}
