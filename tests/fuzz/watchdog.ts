/**
 * A deadline that holds even when the code under test never yields: a Worker thread watches a
 * heartbeat counter in shared memory and, when it stops moving for `ms`, prints what was running
 * and kills the whole process (SIGKILL from the other thread: no JS of the stuck thread needs to
 * run). A device that spins in a loop thus fails the run instead of hanging it.
 *
 * @module
 */

const WORKER = `
self.onmessage = (e) => {
  const { beat, ms, label } = e.data;
  const counter = new Int32Array(beat);
  let last = Atomics.load(counter, 0), since = Date.now();
  setInterval(() => {
    const now = Atomics.load(counter, 0);
    if (now === -1) { self.close(); return; }
    if (now !== last) { last = now; since = Date.now(); return; }
    if (Date.now() - since > ms) {
      const what = new TextDecoder().decode(new Uint8Array(label).filter((b) => b !== 0));
      console.error("HANG: no progress for " + ms + " ms in " + what);
      Deno.kill(Deno.pid, "SIGKILL");
    }
  }, Math.min(250, ms / 4));
};
`;

/** A running watchdog. */
export class Watchdog {
  readonly #beat = new Int32Array(new SharedArrayBuffer(4));
  readonly #label = new Uint8Array(new SharedArrayBuffer(512));
  readonly #worker: Worker;

  /** Kills the process when {@link beat} is not called for `ms`. */
  constructor(ms: number) {
    const url = URL.createObjectURL(new Blob([WORKER], { type: "text/javascript" }));
    this.#worker = new Worker(url, { type: "module" });
    this.#worker.postMessage({ beat: this.#beat.buffer, ms, label: this.#label.buffer });
  }

  /** Progress: resets the deadline; `what` names what runs now (printed on a hang). */
  beat(what?: string): void {
    Atomics.add(this.#beat, 0, 1);
    if (Atomics.load(this.#beat, 0) === -1) Atomics.store(this.#beat, 0, 0);
    if (what !== undefined) {
      const b = new TextEncoder().encode(what.slice(0, 500));
      this.#label.fill(0);
      this.#label.set(b);
    }
  }

  /** Stops watching. */
  stop(): void {
    Atomics.store(this.#beat, 0, -1);
    this.#worker.terminate();
  }
}
