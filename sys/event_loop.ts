/**
 * The epoll-based event loop. It never busy-polls, and runs in one of two ways:
 *
 * - {@link EventLoop.runBlocking} on a thread of its own (the serving Worker): it blocks in a
 *   synchronous `epoll_wait`, so a wake-up costs no hand-off to another thread. Before each wait
 *   one macrotask turn lets every pending promise continuation of device code run. Deno timers,
 *   signals and async ops do not run while that thread is blocked: its timers are
 *   {@link EventLoop.setTimeout} (a timerfd in the same epoll set), other threads wake it through
 *   an eventfd it watches.
 * - {@link EventLoop.run} on a thread that must stay responsive (a client, tests): when nothing
 *   is ready it waits in `epoll_wait` on Deno's blocking thread pool; while work keeps arriving it
 *   polls synchronously and gives one macrotask turn per batch, so Deno timers and signals keep
 *   running at full load.
 *
 * Every ready fd of a batch is dispatched before the next wait (timers included), so no fd can
 * starve another. An fd that reports EPOLLHUP or EPOLLERR is handed to its handler once and then
 * no longer watched unless the handler removed it itself (those two events cannot be masked:
 * leaving the fd in the set would report it on every wait). See docs/ffi-notes.md for the
 * measured costs of each way of waiting.
 *
 * @module
 */
import { check, closeFd, errno, libc, SysError } from "./ffi.ts";
import { Errno } from "./errno.ts";
import { C, EPOLL_EVENT_SIZE } from "./layout.ts";
import { setImmediate } from "node:timers";

/** Called with the epoll event bits for a ready fd. */
export type ReadyHandler = (events: number) => void;

/** A pending {@link EventLoop.setTimeout} timer. */
export interface Timer {
  /** Stops the timer if it has not fired yet (idempotent). */
  cancel(): void;
}

/** Starts a one-shot timer (an {@link EventLoop}'s, or {@link denoTimer}). */
export type SetTimer = (fn: () => void, ms: number) => Timer;

/**
 * A Deno timer as a {@link SetTimer}: for code on a thread whose loop does not block (tests,
 * a client). Code served by a blocking loop must use the loop's timers.
 */
export const denoTimer: SetTimer = (fn, ms) => {
  const id = setTimeout(fn, ms);
  return { cancel: () => clearTimeout(id) };
};

const MAX_EVENTS = 64;
const HANGUP = C.EPOLLHUP | C.EPOLLERR;

interface TimerEntry extends Timer {
  at: number;
  fn: () => void;
  live: boolean;
}

/** One epoll set with handlers per fd, timers, and a way to stop it. */
export class EventLoop {
  readonly #epfd: number;
  readonly #handlers = new Map<number, ReadyHandler>();
  readonly #events = new Uint8Array(EPOLL_EVENT_SIZE * MAX_EVENTS);
  readonly #ev = new DataView(this.#events.buffer);
  readonly #ctlBuf = new Uint8Array(EPOLL_EVENT_SIZE);
  readonly #ctlView = new DataView(this.#ctlBuf.buffer);
  readonly #wakeFd: number;
  #timerFd = -1;
  /** Pending timers, soonest first. */
  #timers: TimerEntry[] = [];
  #armedAt = Infinity;
  #stopped = false;
  #waiting = false;
  #running: Promise<void> | undefined;
  readonly #beforeWait: (() => boolean | number)[] = [];
  /** Called when an fd hung up and the loop stopped watching it (for a log line). */
  onHangup: ((fd: number, events: number) => void) | undefined;

  constructor() {
    this.#epfd = check("epoll_create1", libc.epoll_create1(C.EPOLL_CLOEXEC));
    this.#wakeFd = createEventfd();
    this.add(this.#wakeFd, C.EPOLLIN, () => drainEventfd(this.#wakeFd));
  }

  /** Watches `fd` for `events` (EPOLLIN/EPOLLOUT...), calling `handler` when ready. */
  add(fd: number, events: number, handler: ReadyHandler): void {
    this.#ctl(C.EPOLL_CTL_ADD, fd, events);
    this.#handlers.set(fd, handler);
  }

  /**
   * Calls `fn` each time the loop is about to wait, after the promise continuations of the last
   * batch ran. `fn` returns true when it did something that may have produced more work (the
   * loop then polls instead of waiting), a number of milliseconds to wait at most (e.g. while an
   * async op of this thread is outstanding: its completion is only seen when the loop goes
   * round), or false. The place to hand work queued meanwhile to the kernel in one call (e.g. an
   * io_uring submission). Returns a function that removes the hook.
   */
  beforeWait(fn: () => boolean | number): () => void {
    this.#beforeWait.push(fn);
    return () => {
      const i = this.#beforeWait.indexOf(fn);
      if (i >= 0) this.#beforeWait.splice(i, 1);
    };
  }

  /** Changes the events watched on `fd` (ignored once the loop dropped it after a hang-up). */
  modify(fd: number, events: number): void {
    if (!this.#handlers.has(fd)) return;
    this.#ctl(C.EPOLL_CTL_MOD, fd, events);
  }

  /** True while `fd` is watched. */
  watches(fd: number): boolean {
    return this.#handlers.has(fd);
  }

  /** Stops watching `fd` (does not close it). */
  remove(fd: number): void {
    if (!this.#handlers.delete(fd)) return;
    this.#ctlView.setUint32(0, 0, true);
    if (
      libc.epoll_ctl(this.#epfd, C.EPOLL_CTL_DEL, fd, this.#ctlBuf) < 0 && errno() !== Errno.EBADF
    ) {
      throw new SysError("epoll_ctl DEL", errno());
    }
  }

  #ctl(op: number, fd: number, events: number): void {
    this.#ctlView.setUint32(0, events, true);
    this.#ctlView.setBigUint64(4, BigInt(fd), true);
    check("epoll_ctl", libc.epoll_ctl(this.#epfd, op, fd, this.#ctlBuf));
  }

  /**
   * Calls `fn` once, `ms` milliseconds from now, from this loop (a timerfd in the epoll set: it
   * fires in either run mode and whatever the load).
   */
  setTimeout(fn: () => void, ms: number): Timer {
    const t: TimerEntry = {
      at: performance.now() + Math.max(0, ms),
      fn,
      live: true,
      cancel: () => {
        t.live = false;
      },
    };
    let i = this.#timers.length;
    while (i > 0 && this.#timers[i - 1].at > t.at) i--;
    this.#timers.splice(i, 0, t);
    if (t.at < this.#armedAt) this.#arm(t.at);
    return t;
  }

  #arm(at: number): void {
    if (this.#timerFd < 0) {
      this.#timerFd = check(
        "timerfd_create",
        libc.timerfd_create(C.CLOCK_MONOTONIC, C.TFD_NONBLOCK | C.TFD_CLOEXEC),
      );
      this.add(this.#timerFd, C.EPOLLIN, () => this.#fireTimers());
    }
    this.#armedAt = at;
    // Relative expiry; never 0 (that would disarm): at least 1 µs.
    const ns = Math.max(1000, Math.ceil((at - performance.now()) * 1e6));
    const spec = new BigInt64Array(4); // it_interval {0, 0}, it_value {sec, nsec}
    spec[2] = BigInt(Math.floor(ns / 1e9));
    spec[3] = BigInt(ns % 1e9);
    check("timerfd_settime", libc.timerfd_settime(this.#timerFd, 0, spec, null));
  }

  #fireTimers(): void {
    drainEventfd(this.#timerFd); // a timerfd reads like an eventfd: 8-byte expiry count
    this.#armedAt = Infinity;
    const now = performance.now();
    while (this.#timers.length && (!this.#timers[0].live || this.#timers[0].at <= now)) {
      const t = this.#timers.shift()!;
      if (!t.live) continue;
      t.live = false;
      t.fn();
    }
    while (this.#timers.length && !this.#timers[0].live) this.#timers.shift();
    if (this.#timers.length && !this.#stopped) this.#arm(this.#timers[0].at);
  }

  /**
   * Runs until {@link stop}, staying responsive to this thread's Deno timers, signals and async
   * ops (see the module doc). Handler exceptions propagate and end the loop.
   */
  run(): Promise<void> {
    this.#running ??= this.#loop(false);
    return this.#running;
  }

  /**
   * Runs until {@link stop}, blocking this thread in `epoll_wait` between batches. For a thread
   * that does nothing else (a Worker): use {@link setTimeout} for timers there, and an eventfd
   * watched by this loop to be woken by other threads.
   */
  runBlocking(): Promise<void> {
    this.#running ??= this.#loop(true);
    return this.#running;
  }

  async #loop(blocking: boolean): Promise<void> {
    try {
      while (!this.#stopped) {
        // Promise continuations of the last batch (device requests, DMA replies) run first: a
        // macrotask turn runs only after the whole microtask queue is empty.
        await macrotaskTurn();
        if (this.#stopped) break;
        let busy = false;
        let limit = -1; // wait at most this long (-1: until an fd is ready)
        for (const hook of this.#beforeWait) {
          const r = hook();
          if (r === true) busy = true;
          else if (typeof r === "number" && (limit < 0 || r < limit)) limit = r;
        }
        let n = libc.epoll_wait(
          this.#epfd,
          this.#events,
          MAX_EVENTS,
          busy || !blocking ? 0 : limit,
        );
        if (n < 0) {
          if (errno() === Errno.EINTR) continue;
          throw new SysError("epoll_wait", errno());
        }
        if (n === 0 && !blocking && !busy) {
          // Nothing ready: wait off-thread, so this thread's timers and signals run meanwhile
          // (on failure its errno is lost on the pool thread; the synchronous poll above
          // reports the error on the next round).
          this.#waiting = true;
          try {
            n = await libc.epoll_wait_async(this.#epfd, this.#events, MAX_EVENTS, limit);
          } finally {
            this.#waiting = false;
          }
          if (n <= 0) continue;
        }
        this.#dispatch(n);
      }
    } finally {
      for (const t of this.#timers) t.live = false;
      this.#timers = [];
      closeFd(this.#timerFd);
      closeFd(this.#wakeFd);
      closeFd(this.#epfd);
    }
  }

  #dispatch(n: number): void {
    for (let i = 0; i < n && !this.#stopped; i++) {
      const off = i * EPOLL_EVENT_SIZE;
      const events = this.#ev.getUint32(off, true);
      const fd = Number(this.#ev.getBigUint64(off + 4, true));
      const handler = this.#handlers.get(fd);
      if (!handler) continue;
      handler(events);
      if ((events & HANGUP) && this.#handlers.get(fd) === handler) {
        // Reported once: EPOLLHUP/EPOLLERR cannot be masked, the fd would be ready forever.
        this.remove(fd);
        this.onHangup?.(fd, events);
      }
    }
  }

  /**
   * True while {@link run} waits off-thread: code running meanwhile (a Deno timer, a promise
   * continuation) that leaves work for a beforeWait hook must {@link wake} the loop.
   */
  get waiting(): boolean {
    return this.#waiting;
  }

  /** Makes the loop go round once (its beforeWait hooks run). */
  wake(): void {
    signalEventfd(this.#wakeFd);
  }

  /** Ends the run after the current batch; safe to call from any handler or callback. */
  stop(): void {
    this.#stopped = true;
    signalEventfd(this.#wakeFd);
  }

  /** True once {@link stop} was called. */
  get stopped(): boolean {
    return this.#stopped;
  }
}

/**
 * One macrotask turn: `setImmediate` (node:timers) runs only after the whole microtask
 * queue is empty, and lets the thread's timers and async ops run; ~4 µs here. (A MessageChannel
 * self-post does not: Deno delivers port messages from a promise continuation, so after the first
 * message it interleaves with pending microtasks instead of waiting for them; measured in
 * docs/ffi-notes.md.)
 */
function macrotaskTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

const ONE = new BigUint64Array([1n]);
const ONE_BYTES = new Uint8Array(ONE.buffer);
const SCRATCH = new Uint8Array(8);

/** A new non-blocking, close-on-exec eventfd (counter 0). */
export function createEventfd(): number {
  return check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
}

/** Adds 1 to an eventfd's counter (wakes whoever waits on it). */
export function signalEventfd(fd: number): boolean {
  return libc.write(fd, ONE_BYTES, 8n) === 8n;
}

/** Reads (resets) a non-blocking eventfd's counter; returns it (0 when it was not signalled). */
export function drainEventfd(fd: number): bigint {
  const r = libc.read(fd, SCRATCH, 8n);
  return r === 8n ? new DataView(SCRATCH.buffer).getBigUint64(0, true) : 0n;
}
