/**
 * What a {@link Connection} moves its bytes and fds over: a connected UNIX stream socket
 * (`socketWire`), or an in-memory pair (`memoryWirePair`) for tests and fuzzing that want a whole
 * session without the kernel's socket in between. Both behave alike for the connection: `send`
 * takes whole gather lists (or reports the socket full), `recv` never blocks and ends a read after
 * bytes that came with fds (as recvmsg does), readiness is reported through `pollFd` in the epoll
 * loop.
 *
 * @module
 */
import { Errno } from "../sys/errno.ts";
import { check, closeFd, libc, SysError } from "../sys/ffi.ts";
import { drainEventfd, signalEventfd } from "../sys/event_loop.ts";
import { C } from "../sys/layout.ts";
import { Messenger, type RecvResult } from "../sys/socket.ts";

/** A full-duplex byte stream carrying fds. */
export interface MessageWire {
  /** The fd the event loop watches for readiness (EPOLLIN; EPOLLOUT while output waits). */
  readonly pollFd: number;
  /** Sends the concatenation of `bufs` (at most 8) with `fds`; bytes sent, or -1 when full. */
  send(bufs: readonly Uint8Array[], fds: readonly number[]): number;
  /** Receives into `buf` without blocking (n 0: the peer closed, -1: nothing there). */
  recv(buf: Uint8Array): RecvResult;
  /** Closes this end (the peer then reads end of stream). */
  close(): void;
}

/** A wire over a connected, non-blocking stream socket the wire then owns. */
export function socketWire(fd: number): MessageWire {
  const io = new Messenger(fd);
  return {
    pollFd: fd,
    send: (bufs, fds) => io.send(bufs, fds),
    recv: (buf) => io.recv(buf),
    close: () => closeFd(fd),
  };
}

interface Chunk {
  bytes: Uint8Array;
  off: number;
  fds: number[];
}

const F_DUPFD_CLOEXEC = 1030;

/** One end of an in-memory pair. */
class MemoryEnd implements MessageWire {
  readonly pollFd = check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
  peer!: MemoryEnd;
  #in: Chunk[] = [];
  #closed = false;
  #peerClosed = false;

  send(bufs: readonly Uint8Array[], fds: readonly number[]): number {
    if (this.#closed) throw new SysError("send on a closed memory wire", Errno.EBADF);
    if (this.#peerClosed) throw new SysError("send", Errno.EPIPE);
    let n = 0;
    for (const b of bufs) n += b.length;
    const bytes = new Uint8Array(n);
    let off = 0;
    for (const b of bufs) {
      bytes.set(b, off);
      off += b.length;
    }
    // The receiver gets its own fds, as with SCM_RIGHTS.
    const dups = fds.map((fd) =>
      check("fcntl F_DUPFD_CLOEXEC", libc.fcntl(fd, F_DUPFD_CLOEXEC, 0))
    );
    this.peer.#deliver({ bytes, off: 0, fds: dups });
    return n;
  }

  #deliver(c: Chunk): void {
    if (this.#closed) {
      c.fds.forEach(closeFd);
      return;
    }
    this.#in.push(c);
    signalEventfd(this.pollFd);
  }

  recv(buf: Uint8Array): RecvResult {
    if (this.#in.length === 0) {
      if (this.#peerClosed) return { n: 0, fds: [], truncated: false };
      drainEventfd(this.pollFd);
      return { n: -1, fds: [], truncated: false };
    }
    let n = 0;
    let fds: number[] = [];
    while (this.#in.length && n < buf.length) {
      const c = this.#in[0];
      // A read ends after bytes that brought fds, and bytes with fds start a read of their own.
      if (c.fds.length && n > 0) break;
      const take = Math.min(c.bytes.length - c.off, buf.length - n);
      buf.set(c.bytes.subarray(c.off, c.off + take), n);
      n += take;
      c.off += take;
      if (c.fds.length) {
        fds = c.fds;
        c.fds = [];
      }
      if (c.off === c.bytes.length) this.#in.shift();
      if (fds.length) break;
    }
    if (this.#in.length === 0 && !this.#peerClosed) drainEventfd(this.pollFd);
    return { n, fds, truncated: false };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#in) c.fds.forEach(closeFd);
    this.#in = [];
    closeFd(this.pollFd);
    this.peer.#peerGone();
  }

  #peerGone(): void {
    if (this.#closed) return;
    this.#peerClosed = true;
    signalEventfd(this.pollFd); // wakes the reader for end of stream
  }
}

/** Two connected in-memory ends. */
export function memoryWirePair(): [MessageWire, MessageWire] {
  const a = new MemoryEnd(), b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
