/**
 * Eventfds for interrupts: created through FFI, passed to the server with SET_IRQS, and watched
 * without spinning: a non-blocking read tells whether one fired; {@link EventFd.wait} sleeps in
 * the client's epoll loop until it fires or a bounded timeout expires.
 *
 * @module
 */
import { check, closeFd, libc } from "../sys/ffi.ts";
import { drainEventfd, type EventLoop, signalEventfd } from "../sys/event_loop.ts";
import { C } from "../sys/layout.ts";
import { DEFAULT_TIMEOUT_MS, withTimeout } from "./util.ts";

/** A non-blocking eventfd owned by the test. */
export class EventFd implements Disposable {
  #fd: number;
  /** Signals read from the fd but not yet handed out by {@link take}. */
  #pending = 0n;
  #waiters: (() => void)[] = [];
  #watchLoop: EventLoop | undefined;

  constructor() {
    this.#fd = check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
  }

  /** The raw fd (to pass with SET_IRQS). */
  get fd(): number {
    if (this.#fd < 0) throw new Error("EventFd used after close()");
    return this.#fd;
  }

  /** Returns how often it fired since the last call (0n when it did not) and resets that. */
  take(): bigint {
    const n = this.#pending + drainEventfd(this.fd);
    this.#pending = 0n;
    return n;
  }

  /** Adds 1 to the counter (as the server does to raise the interrupt). */
  signal(): void {
    signalEventfd(this.fd);
  }

  /**
   * Waits until it fires (or had fired since the last {@link take}) and returns the count,
   * consumed like {@link take}. The fd is watched through `loop` (the client's running
   * {@link EventLoop}); rejects with `WaitTimeoutError` after `timeoutMs`, or with the
   * signal's reason when `signal` aborts (e.g. `client.closedSignal`).
   */
  async wait(
    loop: EventLoop,
    timeoutMs = DEFAULT_TIMEOUT_MS,
    what = "eventfd",
    signal?: AbortSignal,
  ): Promise<bigint> {
    const now = this.take();
    if (now > 0n) return now;
    signal?.throwIfAborted();
    let waiter!: () => void;
    let abort: (() => void) | undefined;
    const fired = new Promise<void>((resolve, reject) => {
      this.#waiters.push(waiter = resolve);
      if (signal) {
        signal.addEventListener("abort", abort = () => reject(signal.reason), { once: true });
      }
    });
    this.#watch(loop);
    try {
      await withTimeout(fired, timeoutMs, what);
    } finally {
      if (abort) signal!.removeEventListener("abort", abort);
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      if (this.#waiters.length === 0) this.#unwatch();
    }
    return this.take();
  }

  #watch(loop: EventLoop): void {
    if (this.#watchLoop) return;
    loop.add(this.fd, C.EPOLLIN, () => {
      this.#pending += drainEventfd(this.#fd);
      if (this.#pending === 0n) return;
      for (const w of this.#waiters.splice(0)) w();
      this.#unwatch();
    });
    this.#watchLoop = loop;
  }

  #unwatch(): void {
    this.#watchLoop?.remove(this.#fd);
    this.#watchLoop = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Stops watching and closes the fd (the server's copy, if any, stays valid there). */
  close(): void {
    if (this.#fd < 0) return;
    this.#unwatch();
    closeFd(this.#fd);
    this.#fd = -1;
  }
}
