/**
 * Message framing over one connected UNIX stream socket: reassembles messages from partial
 * reads, attributes passed fds to the message they came with, writes replies and requests with
 * gather `sendmsg` and queues what the socket cannot take yet (EPOLLOUT is armed only then).
 *
 * It knows the 16-byte header and nothing else of the protocol: every complete message (command
 * or reply) goes to one handler, which demultiplexes.
 *
 * Backpressure: while more than `maxQueuedBytes` wait to be written (a peer that sends but does
 * not read), the connection stops taking messages: it neither hands on the ones already buffered
 * nor reads the socket, until the queue has drained to half of that. The peer's further messages
 * wait in the kernel's socket buffers, so memory per connection stays bounded (input buffer,
 * the queue bound plus one message).
 *
 * @module
 */
import { decodeHeader, encodeHeader, type Header, SIZE as HDR } from "../protocol/header.ts";
import { concatBytes } from "../protocol/wire.ts";
import { Errno, VfioUserError } from "../protocol/errors.ts";
import { closeFd } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";
import type { EventLoop } from "../sys/event_loop.ts";
import { type MessageWire, socketWire } from "./wire.ts";

/** One received message. `payload` is only valid during the handler call: copy what you keep. */
export interface Message {
  header: Header;
  /** Bytes after the header. */
  payload: Uint8Array;
  /** Fds that came with the message; the handler owns (and must close) them. */
  fds: number[];
  /** Set when the message was dropped unread (too large); its payload is empty. */
  error?: VfioUserError;
}

/** Callbacks of a {@link Connection}. */
export interface ConnectionHandler {
  onMessage(msg: Message): void;
  /** The connection ended (peer closed, I/O or framing error, or {@link Connection.close}). */
  onClose(reason: Error | undefined): void;
}

/**
 * Observer of every message any {@link Connection} of the process sends or receives, for
 * protocol tracing (`vfud --trace-protocol`). Called synchronously; `parts` are only valid during
 * the call. `fds` is the number of fds attached.
 */
export type MessageTracer = (
  dir: "recv" | "send",
  fd: number,
  header: Header,
  parts: readonly Uint8Array[],
  fds: number,
) => void;

let tracer: MessageTracer | undefined;

/** Installs the process-wide {@link MessageTracer} (`undefined` removes it). */
export function setMessageTracer(t: MessageTracer | undefined): void {
  tracer = t;
}

interface FdGroup {
  fds: number[];
  /** Stream positions [start, end) of the recv that brought them. */
  start: number;
  end: number;
}

interface Pending {
  bufs: Uint8Array[];
  fds: number[];
}

/** Size of a connection's receive buffer: room for two whole messages. */
export function receiveBufferSize(maxMessageSize: number): number {
  return Math.max(2 * maxMessageSize, 1 << 16);
}

/** A framed, full-duplex vfio-user connection. */
export class Connection {
  /** The fd the loop watches (the socket; an eventfd for an in-memory wire). */
  readonly fd: number;
  readonly #loop: EventLoop;
  readonly #io: MessageWire;
  readonly #handler: ConnectionHandler;
  readonly #maxMsg: number;
  #rx: Uint8Array;
  #rxStart = 0;
  #rxEnd = 0;
  /** Stream position of #rx[0]. */
  #rxBase = 0;
  #discard = 0;
  #fdGroups: FdGroup[] = [];
  #txQueue: Pending[] = [];
  /** Bytes in #txQueue. */
  #txBytes = 0;
  readonly #maxQueued: number;
  /** Input stopped because #txBytes passed #maxQueued. */
  #paused = false;
  /** The events the fd is registered for. */
  #interest = C.EPOLLIN | C.EPOLLRDHUP;
  #closed = false;
  #hdrBuf = new Uint8Array(HDR);

  /**
   * Watches `fd` (a connected socket) or a {@link MessageWire}; the connection owns it.
   * `maxQueuedBytes` (default: twice the largest message) bounds the output queued before input
   * stops (see the module documentation). `rxBuffer` (at least {@link receiveBufferSize} bytes)
   * is used as the receive buffer instead of a new one: a server hands the same one to each
   * connection in turn (it is megabytes, and a new one per client only fragments the allocator).
   */
  constructor(
    loop: EventLoop,
    fd: number | MessageWire,
    maxMessageSize: number,
    handler: ConnectionHandler,
    maxQueuedBytes = 2 * maxMessageSize,
    rxBuffer?: Uint8Array,
  ) {
    this.#io = typeof fd === "number" ? socketWire(fd) : fd;
    this.fd = this.#io.pollFd;
    this.#loop = loop;
    this.#handler = handler;
    this.#maxMsg = maxMessageSize;
    this.#maxQueued = maxQueuedBytes;
    const size = receiveBufferSize(maxMessageSize);
    this.#rx = rxBuffer && rxBuffer.length >= size ? rxBuffer : new Uint8Array(size);
    loop.add(this.fd, C.EPOLLIN | C.EPOLLRDHUP, (ev) => this.#onReady(ev));
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes waiting to be written. */
  get queuedBytes(): number {
    return this.#txBytes;
  }

  /** True while input is stopped because too much output waits (see the module doc). */
  get inputPaused(): boolean {
    return this.#paused;
  }

  /**
   * Sends a message: header fields plus payload parts, with `fds` attached to its first byte.
   * Never blocks; what the socket does not take now is copied and sent when it drains.
   */
  send(header: Omit<Header, "size">, parts: readonly Uint8Array[] = [], fds: number[] = []): void {
    if (this.#closed) throw new VfioUserError(Errno.ENOTCONN, "connection closed");
    let size = HDR;
    for (const p of parts) size += p.length;
    const hdr = this.#txQueue.length ? new Uint8Array(HDR) : this.#hdrBuf;
    encodeHeader({ ...header, size }, hdr);
    tracer?.("send", this.fd, { ...header, size }, parts, fds.length);
    const bufs = [hdr, ...parts];
    if (this.#txQueue.length === 0) {
      const sent = this.#trySend(bufs, fds);
      if (sent < 0) return;
      if (sent === size) return;
      this.#queue(bufs, sent > 0 ? [] : fds, Math.max(sent, 0));
    } else {
      this.#queue(bufs, fds, 0);
    }
    if (this.#txBytes > this.#maxQueued) this.#paused = true;
    this.#updateInterest();
  }

  /** Registers for input unless paused, for output while something is queued. */
  #updateInterest(): void {
    if (this.#closed) return;
    const want = (this.#paused ? 0 : C.EPOLLIN | C.EPOLLRDHUP) |
      (this.#txQueue.length ? C.EPOLLOUT : 0);
    if (want === this.#interest) return;
    this.#interest = want;
    this.#loop.modify(this.fd, want);
  }

  /** Sends; returns bytes sent, 0 when the socket was full, -1 when the connection broke. */
  #trySend(bufs: Uint8Array[], fds: number[]): number {
    try {
      const n = this.#io.send(bufs.length > 8 ? [concatBytes(bufs)] : bufs, fds);
      return n < 0 ? 0 : n;
    } catch (e) {
      this.close(e as Error);
      return -1;
    }
  }

  #queue(bufs: Uint8Array[], fds: number[], skip: number): void {
    // Copy the unsent remainder: callers may reuse or release their buffers after send().
    const rest = concatBytes(bufs).subarray(skip);
    this.#txQueue.push({ bufs: [rest.slice()], fds });
    this.#txBytes += rest.length;
  }

  #flushQueue(): void {
    while (this.#txQueue.length) {
      const head = this.#txQueue[0];
      const n = this.#trySend(head.bufs, head.fds);
      if (n <= 0) break;
      head.fds = [];
      this.#txBytes -= n;
      const rest = head.bufs[0].subarray(n);
      if (rest.length) {
        head.bufs[0] = rest;
        break;
      }
      this.#txQueue.shift();
    }
    if (this.#closed) return;
    if (this.#paused && this.#txBytes <= this.#maxQueued / 2) {
      this.#paused = false;
      this.#updateInterest();
      this.#parse(); // messages that waited in the input buffer
      if (!this.#closed && !this.#paused) this.#readAll();
    }
    this.#updateInterest();
  }

  #onReady(events: number): void {
    if (events & C.EPOLLOUT) this.#flushQueue();
    if (this.#closed) return;
    const hangup = (events & (C.EPOLLHUP | C.EPOLLERR)) !== 0;
    if (this.#paused) {
      // Hang-ups are reported whatever we ask for: a peer gone for good cannot take our output.
      if (hangup) this.#flushQueue();
    } else if (hangup || events & (C.EPOLLIN | C.EPOLLRDHUP)) {
      // A hang-up is reported once (the loop then stops watching the fd): read what the peer
      // sent up to its end now.
      this.#readAll(hangup);
    }
    // Still open after a hang-up (input paused meanwhile): nothing will come or go any more.
    if (hangup && !this.#closed) this.close(undefined);
  }

  #readAll(toEnd = false): void {
    for (let rounds = 0; (toEnd || rounds < 64) && !this.#closed && !this.#paused; rounds++) {
      this.#makeRoom();
      const start = this.#rxBase + this.#rxEnd;
      const room = this.#rx.length - this.#rxEnd;
      let r;
      try {
        r = this.#io.recv(this.#rx.subarray(this.#rxEnd));
      } catch (e) {
        this.close(e as Error);
        return;
      }
      if (r.truncated) {
        r.fds.forEach(closeFd);
        this.close(new VfioUserError(Errno.EINVAL, "control data truncated (MSG_CTRUNC)"));
        return;
      }
      if (r.n === 0) {
        r.fds.forEach(closeFd);
        this.close(undefined);
        return;
      }
      if (r.n < 0) {
        if (toEnd) this.close(undefined); // EPOLLERR/HUP without EOF: nothing more will come
        return;
      }
      this.#rxEnd += r.n;
      if (r.fds.length) this.#fdGroups.push({ fds: r.fds, start, end: start + r.n });
      this.#parse();
      // A read that did not fill the room emptied the socket for now: skip the recvmsg that
      // would only say EAGAIN (epoll is level-triggered and reports what arrives later). A recv
      // stopped early by passed fds (the kernel ends a read at their message) reads on.
      if (r.n < room && r.fds.length === 0 && !toEnd) return;
    }
  }

  #makeRoom(): void {
    if (this.#rxStart === this.#rxEnd) {
      this.#rxBase += this.#rxStart;
      this.#rxStart = this.#rxEnd = 0;
    } else if (this.#rx.length - this.#rxEnd < this.#maxMsg) {
      this.#rx.copyWithin(0, this.#rxStart, this.#rxEnd);
      this.#rxBase += this.#rxStart;
      this.#rxEnd -= this.#rxStart;
      this.#rxStart = 0;
    }
  }

  #parse(): void {
    while (!this.#closed && !this.#paused) {
      if (this.#discard > 0) {
        const n = Math.min(this.#discard, this.#rxEnd - this.#rxStart);
        this.#rxStart += n;
        this.#discard -= n;
        if (this.#discard > 0) return;
        continue;
      }
      const avail = this.#rxEnd - this.#rxStart;
      if (avail < HDR) return;
      const header = decodeHeader(this.#rx.subarray(this.#rxStart, this.#rxStart + HDR));
      const pos = this.#rxBase + this.#rxStart;
      if (header.size < HDR) {
        this.close(new VfioUserError(Errno.EINVAL, `message size ${header.size} < ${HDR}`));
        return;
      }
      if (header.size > this.#maxMsg) {
        this.#dropOversized(header, pos);
        continue;
      }
      if (avail < header.size) return;
      const payload = this.#rx.subarray(this.#rxStart + HDR, this.#rxStart + header.size);
      this.#rxStart += header.size;
      const fds = this.#takeFds(pos, header.size);
      tracer?.("recv", this.fd, header, [payload], fds.length);
      this.#handler.onMessage({ header, payload, fds });
    }
  }

  /** A too-large message is skipped (its bytes discarded) and reported; the stream goes on. */
  #dropOversized(header: Header, pos: number): void {
    const fds = this.#takeFds(pos, header.size);
    this.#discard = header.size;
    tracer?.("recv", this.fd, header, [], fds.length);
    const error = new VfioUserError(
      Errno.E2BIG,
      `message size ${header.size} exceeds limit ${this.#maxMsg}`,
    );
    this.#handler.onMessage({ header, payload: new Uint8Array(0), fds, error });
  }

  /**
   * Fds come with the socket buffer of the first byte of the message they were sent with, and a
   * recvmsg stops right after such a buffer: so a group belongs to the last message that starts
   * inside the recv that brought it. Groups that no message starts in are closed (bad peer).
   */
  #takeFds(pos: number, size: number): number[] {
    const out: number[] = [];
    while (this.#fdGroups.length) {
      const g = this.#fdGroups[0];
      if (pos < g.start) break; // this message started before the group's recv
      if (pos >= g.end) {
        g.fds.forEach(closeFd); // no message started within that recv: orphaned fds
        this.#fdGroups.shift();
        continue;
      }
      if (pos + size < g.end) break; // a later message starts inside the same recv
      out.push(...g.fds);
      this.#fdGroups.shift();
    }
    return out;
  }

  /** Closes the socket, drops queued output and received fds, and notifies the handler once. */
  close(reason?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#loop.remove(this.fd);
    this.#io.close();
    for (const g of this.#fdGroups) g.fds.forEach(closeFd);
    this.#fdGroups = [];
    this.#txQueue = [];
    this.#txBytes = 0;
    this.#handler.onClose(reason);
  }
}
