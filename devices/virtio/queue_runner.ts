/**
 * Drives one split virtqueue: serializes avail-ring processing (kicks that arrive while a batch
 * runs are remembered, never lost), runs requests concurrently, publishes completions in batches
 * and tracks everything in flight so reset and quiesce can wait for it.
 *
 * @module
 */
import type { DescChain } from "./descriptors.ts";
import { IdleTracker } from "./idle.ts";
import type { SplitQueue, UsedElem } from "./virtqueue.ts";

/** Callbacks of a {@link QueueRunner}. */
export interface RunnerHooks {
  /** Processes a chain; resolves with the used length. */
  handle(chain: DescChain): Promise<number>;
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

  /** `broken` restores a queue that had failed before it was saved. */
  constructor(queue: SplitQueue, hooks: RunnerHooks, broken = false) {
    this.#q = queue;
    this.#hooks = hooks;
    this.#broken = broken;
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

  /** Pops batches until no kick is pending and the avail ring is empty. */
  async #drain(): Promise<void> {
    while (this.#kicked && this.#canRun()) {
      if (this.#inFlight >= this.#q.size) return; // still kicked: a completion restarts us
      this.#kicked = false;
      const heads = await this.#q.popAvailable(this.#q.size - this.#inFlight);
      for (const head of heads) {
        if (this.#broken || this.#stopped) return; // a reset discards taken buffers
        this.#start(await this.#q.readChain(head));
      }
      await this.#q.setAvailEvent();
      if ((await this.#q.availIdx()) !== this.#q.lastAvail) this.#kicked = true;
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
      (err) => this.#fail(err),
    ).finally(() => {
      this.#inFlight--;
      this.#work.end();
      if (this.#kicked && !this.#draining && this.#canRun()) this.#startDrain();
    });
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
      await this.#q.pushUsed(batch);
      if (await this.#q.shouldNotify()) this.#hooks.notify();
    }
  }

  #fail(err: unknown): void {
    if (this.#broken) return;
    this.#broken = true;
    this.#pending = [];
    this.#hooks.fail(err);
  }
}
