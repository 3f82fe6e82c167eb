/**
 * A non-blocking fd in the EventLoop with a bounded send queue: what the kernel does not take at
 * once waits for EPOLLOUT; whole messages are dropped (never cut) when the queue is full.
 * "packet" fds (tap) take each message in one write(); "stream" fds (sockets) may take part of
 * one, and the rest follows. Input can be paused (receive backpressure): the fd is then not
 * watched for input, and not watched at all while nothing waits to be written (epoll reports
 * hang-ups even unasked, which would otherwise wake the loop over and over).
 *
 * @module
 */
import { errno, libc, SysError } from "../../sys/ffi.ts";
import { Errno } from "../../sys/errno.ts";
import type { EventLoop } from "../../sys/event_loop.ts";
import { C } from "../../sys/layout.ts";
import { WaitQueue } from "../../sys/waiters.ts";

/** onReadable calls after a hang-up, at most (each reads a batch; the owner sees EOF first). */
const HANGUP_READS = 1024;

/** Options of {@link FdChannel}. */
export interface FdChannelOptions {
  mode: "packet" | "stream";
  /** The fd is readable (or hung up): read until EAGAIN or a batch limit. */
  onReadable(): void;
  /** A fatal write error (peer gone): the owner closes the channel. */
  onError(err: SysError): void;
  /** Queued bytes above which the channel reports congestion. Default 256 KiB. */
  highWater?: number;
  /** Queued bytes above which new messages are dropped. Default 1 MiB. */
  maxQueue?: number;
}

/** An fd watched by the loop, with a send queue. */
export class FdChannel {
  readonly fd: number;
  readonly #loop: EventLoop;
  readonly #opts: FdChannelOptions;
  readonly #highWater: number;
  readonly #maxQueue: number;
  readonly #waiters = new WaitQueue();
  #queue: Uint8Array[] = [];
  #queued = 0;
  /** Bytes of the first queued message already written (stream mode). */
  #partial = 0;
  #watchingOut = false;
  #reading = true;
  /** Hung up while input was paused: unwatched until input resumes. */
  #dormant = false;
  /** In the loop's epoll set. */
  #registered = true;
  #closed = false;

  /** Starts watching `fd` (non-blocking) for input. The channel owns the fd. */
  constructor(loop: EventLoop, fd: number, opts: FdChannelOptions) {
    this.fd = fd;
    this.#loop = loop;
    this.#opts = opts;
    this.#highWater = opts.highWater ?? 256 * 1024;
    this.#maxQueue = opts.maxQueue ?? 1024 * 1024;
    loop.add(fd, C.EPOLLIN, (ev) => this.#ready(ev));
  }

  /** True while input is watched (not paused). */
  get reading(): boolean {
    return this.#reading;
  }

  /** Stops watching for input (the kernel keeps what arrives) until {@link resumeInput}. */
  pauseInput(): void {
    if (!this.#reading) return;
    this.#reading = false;
    this.#sync();
  }

  /** Watches for input again; `onReadable` follows if input is waiting. */
  resumeInput(): void {
    if (this.#reading) return;
    this.#reading = true;
    this.#dormant = false;
    this.#sync();
  }

  /** True while more than the high-water mark waits to be written. */
  get congested(): boolean {
    return this.#queued > this.#highWater;
  }

  /** Bytes waiting to be written. */
  get queued(): number {
    return this.#queued;
  }

  /** Resolves when not congested or closed. */
  writable(): Promise<void> {
    return this.congested && !this.#closed ? this.#waiters.wait() : Promise.resolve();
  }

  /**
   * Sends `msg` (the channel may keep the array: pass one you own). Returns false when it was
   * dropped (closed, or the queue is full). A non-recoverable error calls `onError`.
   */
  send(msg: Uint8Array): boolean {
    if (this.#closed) return false;
    if (this.#queue.length === 0) {
      const n = this.#write(msg);
      if (n === msg.length) return true;
      if (n < 0) return n === -1 && this.#enqueue(msg, 0);
      return this.#enqueue(msg, n);
    }
    return this.#enqueue(msg, 0);
  }

  #enqueue(msg: Uint8Array, written: number): boolean {
    if (this.#queued + msg.length > this.#maxQueue) return false;
    this.#queue.push(msg);
    this.#queued += msg.length - written;
    if (this.#queue.length === 1) this.#partial = written;
    this.#watch(true);
    return true;
  }

  /**
   * One write(): bytes written, -1 when the kernel is full (EAGAIN), -2 after an error that
   * drops the message (packet mode, e.g. EIO from a tap that is down), -3 after a fatal one.
   */
  #write(bytes: Uint8Array): number {
    for (;;) {
      const r = Number(libc.write(this.fd, bytes, BigInt(bytes.length)));
      if (r >= 0) return this.#opts.mode === "packet" ? bytes.length : r;
      const err = errno();
      if (err === Errno.EINTR) continue;
      if (err === Errno.EAGAIN) return -1;
      if (this.#opts.mode === "packet" && err !== Errno.EBADF) return -2;
      queueMicrotask(() => this.#opts.onError(new SysError("write", err)));
      return -3;
    }
  }

  #ready(events: number): void {
    const hangup = (events & (C.EPOLLHUP | C.EPOLLERR)) !== 0;
    if (this.#reading) {
      if (events & C.EPOLLIN && !hangup) this.#opts.onReadable();
      // A hang-up is reported once (the loop then stops watching the fd): read what the peer
      // left up to its end now, unless the owner pauses input or closes meanwhile.
      for (let i = 0; hangup && i < HANGUP_READS && this.#reading && !this.#closed; i++) {
        this.#opts.onReadable();
      }
      if (!this.#closed && events & C.EPOLLOUT) this.#flush();
    } else if (events & C.EPOLLOUT || (hangup && this.#watchingOut)) this.#flush();
    if (!this.#closed && hangup) {
      // Reported whatever we ask for: unwatched until input resumes (writes fail meanwhile,
      // which tells the owner the peer is gone).
      this.#dormant = true;
      this.#sync();
    }
  }

  #flush(): void {
    this.#drainQueue();
    if (this.#queue.length === 0) this.#watch(false);
    if (!this.congested) this.#waiters.wakeAll();
  }

  #drainQueue(): void {
    while (this.#queue.length) {
      const rest = this.#queue[0].subarray(this.#partial);
      const n = this.#write(rest);
      if (n === -1) return;
      if (n >= 0 && n < rest.length) {
        this.#partial += n;
        this.#queued -= n;
        return;
      }
      this.#queue.shift();
      this.#queued -= rest.length;
      this.#partial = 0;
      if (n === -3) return;
    }
  }

  #watch(out: boolean): void {
    if (this.#watchingOut === out || this.#closed) return;
    this.#watchingOut = out;
    this.#sync();
  }

  /** Brings the epoll registration in line with what is wanted. */
  #sync(): void {
    if (this.#closed) return;
    const events = (this.#reading ? C.EPOLLIN : 0) | (this.#watchingOut ? C.EPOLLOUT : 0);
    if (events === 0 || this.#dormant) {
      if (this.#registered) this.#loop.remove(this.fd);
      this.#registered = false;
    } else if (!this.#registered) {
      this.#loop.add(this.fd, events, (ev) => this.#ready(ev));
      this.#registered = true;
    } else {
      this.#loop.modify(this.fd, events);
    }
  }

  /** Stops watching, closes the fd, drops the queue and wakes waiters. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#registered) this.#loop.remove(this.fd);
    libc.close(this.fd);
    this.#queue = [];
    this.#queued = 0;
    this.#waiters.wakeAll();
  }
}
