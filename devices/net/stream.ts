/**
 * A UNIX stream socket carrying frames in QEMU's `-netdev stream` framing (see stream_codec.ts),
 * so a vfud NIC can be cabled to a QEMU NIC (`-netdev stream,server=...,addr.type=unix,
 * addr.path=...`) or to another vfud. As server it listens on `path` and serves one peer at a
 * time (others wait in the backlog); as client it connects and reconnects after a failure or a
 * disconnect. Carrier is up while a peer is connected. While the NIC cannot receive, the socket
 * is left unread: the peer's writes back up in it (QEMU's stream netdev then holds its NIC's
 * transmit queue), and the frames of the last read() that the NIC did not take yet are held.
 *
 * @module
 */
import { errno, libc, SysError } from "../../sys/ffi.ts";
import { Errno } from "../../sys/errno.ts";
import type { EventLoop, Timer } from "../../sys/event_loop.ts";
import { C } from "../../sys/layout.ts";
import { acceptUnix, claimSocketPath, connectUnix, listenUnix } from "../../sys/socket.ts";
import { logger } from "../../sys/log.ts";
import { NetBackendBase } from "./backend.ts";
import { FdChannel } from "./fd_channel.ts";
import { encodeFrame, StreamDecoder } from "./stream_codec.ts";

/** Options of {@link StreamBackend.open}. */
export interface StreamOptions {
  /** UNIX socket path. */
  path: string;
  /** Listen (true) or connect (false). */
  server: boolean;
  /** Client: delay between connection attempts. Default 1000 ms. */
  reconnectMs?: number;
}

/** Bytes read per read() call. */
const READ_CHUNK = 64 * 1024;
/** read() calls per readiness event before giving the loop back. */
const READ_BATCH = 16;

/** Frames over a UNIX stream socket. */
export class StreamBackend extends NetBackendBase {
  readonly kind = "stream";
  readonly #loop: EventLoop;
  readonly #opts: StreamOptions;
  readonly #decoder = new StreamDecoder();
  readonly #buf = new Uint8Array(READ_CHUNK);
  readonly #log = logger("net", "stream");
  #toldWaiting = false;
  #listenFd = -1;
  #conn: FdChannel | undefined;
  #timer: Timer | undefined;
  #adopted = false;

  private constructor(loop: EventLoop, opts: StreamOptions) {
    super();
    this.#loop = loop;
    this.#opts = opts;
  }

  /** Starts listening or connecting. Throws if a server cannot bind `path`. */
  static open(loop: EventLoop, opts: StreamOptions): StreamBackend {
    const b = new StreamBackend(loop, opts);
    if (opts.server) b.#listen();
    else b.#connect();
    return b;
  }

  /**
   * Uses an already-connected stream socket (e.g. one end of a socketpair, or an inherited fd):
   * the backend owns it; when the peer leaves the link stays down (nothing to reconnect to).
   */
  static adopt(loop: EventLoop, fd: number): StreamBackend {
    const b = new StreamBackend(loop, { path: "", server: false });
    b.#adopted = true;
    b.#connected(fd);
    return b;
  }

  get linkUp(): boolean {
    return this.#conn !== undefined;
  }

  get congested(): boolean {
    return this.#conn?.congested ?? false;
  }

  send(frame: Uint8Array): boolean {
    return this.countSend(this.#conn?.send(encodeFrame(frame)) ?? false, frame.length);
  }

  writable(): Promise<void> {
    return this.#conn?.writable() ?? Promise.resolve();
  }

  protected override pauseReading(): void {
    this.#conn?.pauseInput();
  }

  protected override resumeReading(): void {
    this.#conn?.resumeInput();
  }

  protected shutdown(): void {
    this.#timer?.cancel();
    this.#conn?.close();
    this.#conn = undefined;
    if (this.#listenFd >= 0) {
      this.#loop.remove(this.#listenFd);
      libc.close(this.#listenFd);
      this.#listenFd = -1;
      try {
        Deno.removeSync(this.#opts.path);
      } catch { /* already gone */ }
    }
  }

  #listen(): void {
    claimSocketPath(this.#opts.path);
    this.#listenFd = listenUnix(this.#opts.path);
    this.#watchListener(true);
    this.#log.info("waiting for a peer on {path}", { path: this.#opts.path });
  }

  #watchListener(on: boolean): void {
    if (on) this.#loop.add(this.#listenFd, C.EPOLLIN, () => this.#accept());
    else this.#loop.remove(this.#listenFd);
  }

  #accept(): void {
    const fd = acceptUnix(this.#listenFd);
    if (fd < 0) return;
    this.#watchListener(false);
    this.#connected(fd);
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.closed) return;
    let fd: number;
    try {
      fd = connectUnix(this.#opts.path);
    } catch (e) {
      // Told once at info (the peer may just not be up yet), every retry at debug.
      const level = this.#toldWaiting ? "debug" : "info";
      this.#toldWaiting = true;
      this.#log[level]("no peer on {path} yet ({error}); retrying every {ms} ms", {
        path: this.#opts.path,
        error: (e as Error).message,
        ms: this.#opts.reconnectMs ?? 1000,
      });
      this.#timer = this.#loop.setTimeout(() => this.#connect(), this.#opts.reconnectMs ?? 1000);
      return;
    }
    this.#connected(fd);
  }

  #connected(fd: number): void {
    this.#toldWaiting = false;
    this.#decoder.reset();
    this.forgetHeld();
    this.#conn = new FdChannel(this.#loop, fd, {
      mode: "stream",
      onReadable: () => this.#readable(),
      onError: (e) => this.#disconnect(e.message),
    });
    this.#log.info("peer connected on {path}", { path: this.#opts.path || `fd ${fd}` });
    this.handlers?.linkChanged(true);
  }

  #disconnect(reason: string): void {
    if (!this.#conn) return;
    this.#conn.close();
    this.#conn = undefined;
    this.forgetHeld();
    this.#log.info("peer gone on {path}: {reason}", { path: this.#opts.path, reason });
    this.handlers?.linkChanged(false);
    if (this.closed || this.#adopted) return;
    if (this.#opts.server) this.#watchListener(true);
    else this.#timer = this.#loop.setTimeout(() => this.#connect(), this.#opts.reconnectMs ?? 1000);
  }

  #readable(): void {
    for (let i = 0; i < READ_BATCH; i++) {
      const conn = this.#conn;
      if (!conn || !this.mayRead()) return;
      const n = Number(libc.read(conn.fd, this.#buf, BigInt(this.#buf.length)));
      if (n < 0) {
        const err = errno();
        if (err === Errno.EINTR) continue;
        if (err !== Errno.EAGAIN) this.#disconnect(new SysError("read", err).message);
        return;
      }
      if (n === 0) return this.#disconnect("end of stream");
      try {
        this.#decoder.push(this.#buf.subarray(0, n), (f) => this.deliver(f));
      } catch (e) {
        return this.#disconnect((e as Error).message);
      }
    }
  }
}
