/**
 * A deadline that holds even when the code under test never yields: a Worker thread watches a
 * heartbeat counter in shared memory and, when it stops moving for `ms`, prints what was running
 * and kills the whole process (SIGKILL from the other thread: no JS of the stuck thread needs to
 * run). A device that spins in a loop thus fails the run instead of hanging it (a setTimeout
 * deadline cannot fire while the JS thread spins).
 *
 * {@link guarded} arms one shared watchdog around a wait of the test helpers.
 *
 * @module
 */

const WORKER = `
self.onmessage = (e) => {
  const { beat, ms, label } = e.data;
  const counter = new Int32Array(beat, 0, 1);
  const armed = new Int32Array(beat, 4, 1);
  let last = Atomics.load(counter, 0), since = Date.now();
  setInterval(() => {
    const now = Atomics.load(counter, 0);
    if (now === -1) { self.close(); return; }
    if (Atomics.load(armed, 0) === 0) { since = Date.now(); return; }
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
  readonly #shared = new SharedArrayBuffer(8);
  readonly #beat = new Int32Array(this.#shared, 0, 1);
  readonly #armed = new Int32Array(this.#shared, 4, 1);
  readonly #label = new Uint8Array(new SharedArrayBuffer(512));
  readonly #worker: Worker;

  /** Kills the process when {@link beat} is not called for `ms`. */
  constructor(ms: number) {
    const url = URL.createObjectURL(new Blob([WORKER], { type: "text/javascript" }));
    this.#worker = new Worker(url, { type: "module" });
    Atomics.store(this.#armed, 0, 1);
    this.#worker.postMessage({ beat: this.#shared, ms, label: this.#label.buffer });
  }

  /** Watches again after {@link disarm}. */
  arm(): void {
    Atomics.add(this.#beat, 0, 1);
    Atomics.store(this.#armed, 0, 1);
  }

  /** Stops watching until {@link arm} (the thread stays, idle). */
  disarm(): void {
    Atomics.store(this.#armed, 0, 0);
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

let shared: Watchdog | undefined;
let armed = 0;

/**
 * Runs `fn` (a wait of a test helper) under a process-wide watchdog of `ms`: if the JS thread
 * makes no progress for that long (a device spinning without yielding), the process is killed
 * with `what` printed. Outside such waits the watchdog is idle.
 */
export async function guarded<T>(what: string, fn: () => Promise<T>, ms = 30_000): Promise<T> {
  shared ??= new Watchdog(ms);
  if (armed++ === 0) shared.arm();
  shared.beat(what);
  const tick = setInterval(() => shared?.beat(), Math.min(1000, ms / 4));
  try {
    return await fn();
  } finally {
    clearInterval(tick);
    if (--armed === 0) shared.disarm();
  }
}

/**
 * `fn()` with both deadlines a test wait needs: it fails after `ms` when it never settles (a
 * promise nobody resolves), and the process is killed after `ms` without progress of the JS
 * thread (a device spinning without yielding, when no timer can fire).
 */
export function bounded<T>(what: string, fn: () => Promise<T>, ms = 30_000): Promise<T> {
  return guarded(what, async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([fn(), late]);
    } finally {
      clearTimeout(timer);
    }
  }, ms);
}
