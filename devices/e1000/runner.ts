/**
 * Serializes a device engine's asynchronous work: `kick()` runs the body unless it is running,
 * and a kick that arrives while it runs makes it run once more, so no kick is lost and no two
 * bodies overlap. Tracks the work so reset/quiesce can wait for it.
 *
 * @module
 */
import { IdleTracker } from "../virtio/idle.ts";

/** A kick-driven, never-overlapping async job. */
export class SerialRunner {
  readonly #body: () => Promise<void>;
  readonly #onError: (err: unknown) => void;
  readonly #work = new IdleTracker();
  #kicked = false;
  #running = false;

  /** `body` does all pending work and returns; errors go to `onError`. */
  constructor(body: () => Promise<void>, onError: (err: unknown) => void) {
    this.#body = body;
    this.#onError = onError;
  }

  /** True while the body runs. */
  get running(): boolean {
    return this.#running;
  }

  /** Asks for the body to run (now, or again after the current run). */
  kick(): void {
    this.#kicked = true;
    if (!this.#running) this.#start();
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
      this.#work.end();
    });
  }

  async #loop(): Promise<void> {
    while (this.#kicked) {
      this.#kicked = false;
      try {
        await this.#body();
      } catch (err) {
        this.#onError(err);
      }
    }
  }
}
