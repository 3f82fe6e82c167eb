/**
 * Serializes a device engine's asynchronous work: `kick()` runs the body unless it is running,
 * and a kick that arrives while it runs makes it run once more, so no kick is lost and no two
 * bodies overlap. Tracks the work so reset and pause can wait for it, and pauses (a kick while
 * paused is remembered and acted on by {@link SerialRunner.resume}): the shape of every engine
 * that a register write or an outside event wakes (e1000's transmit and receive units, the test
 * device's doorbell).
 *
 * @module
 */
import { IdleTracker } from "./idle.ts";

/** A kick-driven, never-overlapping async job. */
export class SerialRunner {
  readonly #body: () => Promise<void>;
  readonly #onError: (err: unknown) => void;
  readonly #work = new IdleTracker();
  #kicked = false;
  #running = false;
  #paused = false;

  /**
   * `body` does all pending work and returns (it looks at {@link paused} to stop at a boundary);
   * errors go to `onError`.
   */
  constructor(body: () => Promise<void>, onError: (err: unknown) => void) {
    this.#body = body;
    this.#onError = onError;
  }

  /** True while the body runs. */
  get running(): boolean {
    return this.#running;
  }

  /** True between {@link pause} and {@link resume}. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Asks for the body to run (now, again after the current run, or after the pause). */
  kick(): void {
    this.#kicked = true;
    if (!this.#running && !this.#paused) this.#start();
  }

  /** Starts no run until {@link resume}; resolves when the current run (if any) ended. */
  pause(): Promise<void> {
    this.#paused = true;
    return this.#work.whenIdle();
  }

  /** Ends the pause; a kick that came meanwhile (or was left pending) runs the body. */
  resume(): void {
    this.#paused = false;
    if (this.#kicked && !this.#running) this.#start();
  }

  /** Resolves when no run is in progress. */
  whenIdle(): Promise<void> {
    return this.#work.whenIdle();
  }

  #start(): void {
    this.#running = true;
    this.#work.begin();
    this.#loop().finally(() => {
      this.#running = false;
      // A kick between the loop's last check and this callback (both microtasks) saw #running
      // still set and left the run to us.
      if (this.#kicked && !this.#paused) this.#start();
      this.#work.end();
    });
  }

  async #loop(): Promise<void> {
    while (this.#kicked && !this.#paused) {
      this.#kicked = false;
      try {
        await this.#body();
      } catch (err) {
        this.#onError(err);
      }
    }
  }
}
