/**
 * The epoll-based event loop. It never busy-polls: when nothing is ready it waits in
 * `epoll_wait` on Deno's blocking thread pool (so timers, signals and promise continuations of
 * device code keep running on the JS thread); when work keeps arriving it polls synchronously
 * with a zero timeout first, which avoids a thread hand-off per event under load
 * (see docs/ffi-notes.md for the measured costs).
 *
 * @module
 */
import { check, closeFd, errno, libc, SysError } from "./ffi.ts";
import { Errno } from "./errno.ts";
import { C, EPOLL_EVENT_SIZE } from "./layout.ts";

/** Called with the epoll event bits for a ready fd. */
export type ReadyHandler = (events: number) => void;

const MAX_EVENTS = 64;

/** One epoll set with handlers per fd. */
export class EventLoop {
  readonly #epfd: number;
  readonly #handlers = new Map<number, ReadyHandler>();
  readonly #events = new Uint8Array(EPOLL_EVENT_SIZE * MAX_EVENTS);
  readonly #ev = new DataView(this.#events.buffer);
  readonly #ctlBuf = new Uint8Array(EPOLL_EVENT_SIZE);
  readonly #wakeFd: number;
  #stopped = false;
  #running: Promise<void> | undefined;

  constructor() {
    this.#epfd = check("epoll_create1", libc.epoll_create1(C.EPOLL_CLOEXEC));
    this.#wakeFd = check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
    this.add(this.#wakeFd, C.EPOLLIN, () => drainEventfd(this.#wakeFd));
  }

  /** Watches `fd` for `events` (EPOLLIN/EPOLLOUT...), calling `handler` when ready. */
  add(fd: number, events: number, handler: ReadyHandler): void {
    this.#ctl(C.EPOLL_CTL_ADD, fd, events);
    this.#handlers.set(fd, handler);
  }

  /** Changes the events watched on `fd`. */
  modify(fd: number, events: number): void {
    this.#ctl(C.EPOLL_CTL_MOD, fd, events);
  }

  /** Stops watching `fd` (does not close it). */
  remove(fd: number): void {
    if (!this.#handlers.delete(fd)) return;
    const v = new DataView(this.#ctlBuf.buffer);
    v.setUint32(0, 0, true);
    if (
      libc.epoll_ctl(this.#epfd, C.EPOLL_CTL_DEL, fd, this.#ctlBuf) < 0 && errno() !== Errno.EBADF
    ) {
      throw new SysError("epoll_ctl DEL", errno());
    }
  }

  #ctl(op: number, fd: number, events: number): void {
    const v = new DataView(this.#ctlBuf.buffer);
    v.setUint32(0, events, true);
    v.setBigUint64(4, BigInt(fd), true);
    check("epoll_ctl", libc.epoll_ctl(this.#epfd, op, fd, this.#ctlBuf));
  }

  /** Runs until {@link stop}. Handler exceptions propagate and end the loop. */
  run(): Promise<void> {
    this.#running ??= this.#loop();
    return this.#running;
  }

  async #loop(): Promise<void> {
    try {
      while (!this.#stopped) {
        let n = libc.epoll_wait(this.#epfd, this.#events, MAX_EVENTS, 0);
        if (n < 0) {
          if (errno() === Errno.EINTR) continue;
          throw new SysError("epoll_wait", errno());
        }
        if (n === 0) {
          // Nothing ready: block off-thread (every syscall is dear on these VMs, so the events
          // it reports are used as they are; on failure its errno is lost on the pool thread,
          // and the synchronous poll above reports the error).
          n = await libc.epoll_wait_async(this.#epfd, this.#events, MAX_EVENTS, -1);
          if (n <= 0) continue;
        } else {
          await null; // let promise continuations of device work run between batches
        }
        this.#dispatch(n);
      }
    } finally {
      closeFd(this.#wakeFd);
      closeFd(this.#epfd);
    }
  }

  #dispatch(n: number): void {
    for (let i = 0; i < n && !this.#stopped; i++) {
      const off = i * EPOLL_EVENT_SIZE;
      const events = this.#ev.getUint32(off, true);
      const fd = Number(this.#ev.getBigUint64(off + 4, true));
      this.#handlers.get(fd)?.(events);
    }
  }

  /** Ends {@link run} after the current batch; safe to call from any handler or signal. */
  stop(): void {
    this.#stopped = true;
    signalEventfd(this.#wakeFd);
  }
}

const ONE = new BigUint64Array([1n]);
const ONE_BYTES = new Uint8Array(ONE.buffer);
const SCRATCH = new Uint8Array(8);

/** Adds 1 to an eventfd's counter (wakes whoever waits on it). */
export function signalEventfd(fd: number): boolean {
  return libc.write(fd, ONE_BYTES, 8n) === 8n;
}

/** Reads (resets) a non-blocking eventfd's counter; returns it (0 when it was not signalled). */
export function drainEventfd(fd: number): bigint {
  const r = libc.read(fd, SCRATCH, 8n);
  return r === 8n ? new DataView(SCRATCH.buffer).getBigUint64(0, true) : 0n;
}
