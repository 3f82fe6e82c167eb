/**
 * Serves one device on a listening socket (or one already-connected socket): accepts a client,
 * runs its session, and after it leaves accepts the next one with device state kept
 * (spec, "Reconnection"). One client at a time: a second connection is refused while one is
 * served.
 *
 * @module
 */
import { receiveBufferSize } from "../transport/connection.ts";
import type { Logger } from "@logtape/logtape";
import { closeFd } from "../sys/ffi.ts";
import type { EventLoop } from "../sys/event_loop.ts";
import { C } from "../sys/layout.ts";
import { acceptUnix, peerCredentials } from "../sys/socket.ts";
import { readSmallFile } from "../sys/files.ts";
import type { DeviceHost } from "./host.ts";
import { Session, type SessionOptions } from "./session.ts";
import type { MessageWire } from "../transport/wire.ts";
import { DEFAULT_DMA_CHUNK } from "./message_dma.ts";
import { defaultMaxDmaMaps } from "../dma/table.ts";

/**
 * Default limits: 1 MiB data per message plus room for headers; DMA maps as many as the process
 * can mmap (README, "Limits").
 */
export const DEFAULT_SESSION_OPTIONS: SessionOptions = {
  maxDataXferSize: 1 << 20,
  maxMessageSize: (1 << 20) + 4096,
  maxMsgFds: 16,
  maxDmaMaps: defaultMaxDmaMaps(),
  dmaChunk: DEFAULT_DMA_CHUNK,
};

/** The server of one device. */
export class Server {
  readonly #loop: EventLoop;
  readonly #host: DeviceHost;
  readonly #options: SessionOptions;
  readonly #log: Logger;
  #listenFd = -1;
  #rxBuffer: Uint8Array | undefined;
  #session: Session | undefined;
  #sessions = 0;
  /** Called when a session on a pre-connected fd ends (there is no next client). */
  onLastSession: (() => void) | undefined;
  /** Told who connected (`describePeer`), and undefined when that client left. */
  onClient: ((peer: string | undefined) => void) | undefined;

  constructor(loop: EventLoop, host: DeviceHost, options: SessionOptions, log: Logger) {
    this.#loop = loop;
    this.#host = host;
    this.#options = options;
    this.#log = log;
  }

  /** The current session, if a client is connected. */
  get session(): Session | undefined {
    return this.#session;
  }

  /** Number of sessions served so far. */
  get sessionCount(): number {
    return this.#sessions;
  }

  /** Accepts clients on a listening socket. */
  listen(fd: number): void {
    this.#listenFd = fd;
    this.#loop.add(fd, C.EPOLLIN, () => this.#accept());
  }

  /** Serves a single already-connected client. */
  serveConnected(fd: number | MessageWire): void {
    this.#start(fd, true);
  }

  #accept(): void {
    // The client just left and its teardown has not run yet (it runs after this batch of
    // events): the next client waits in the backlog until it has, instead of being refused.
    if (this.#session?.ended) return this.#pauseAccepting();
    for (;;) {
      let fd: number;
      try {
        fd = acceptUnix(this.#listenFd);
      } catch (e) {
        this.#log.error("accept failed: {error}", { error: (e as Error).message });
        return;
      }
      if (fd < 0) return;
      if (this.#session) {
        this.#log.warn("refusing a second client while one is connected");
        closeFd(fd);
        continue;
      }
      this.#start(fd, false);
    }
  }

  #start(fd: number | MessageWire, last: boolean): void {
    const n = ++this.#sessions;
    const log = this.#log.getChild(`session-${n}`).with({ session: n });
    const peer = typeof fd === "number" ? describePeer(fd) : "in-memory wire";
    log.info("client connected (session {n}): {peer}", { n, peer });
    this.onClient?.(peer);
    const since = performance.now();
    // One session at a time: each gets the same receive buffer in turn.
    this.#rxBuffer ??= new Uint8Array(receiveBufferSize(this.#options.maxMessageSize));
    const session = new Session(this.#loop, fd, this.#host, this.#options, log, this.#rxBuffer);
    this.#session = session;
    session.closed.then(async (reason) => {
      const summary = {
        commands: session.commands,
        seconds: ((performance.now() - since) / 1000).toFixed(1),
      };
      if (reason) {
        log.warn("client connection ended after {commands} commands, {seconds} s: {error}", {
          ...summary,
          error: reason.message,
        });
      } else log.info("client disconnected after {commands} commands, {seconds} s", summary);
      this.onClient?.(undefined);
      // Requests of the old client must be over before a new client's memory is installed:
      // they fail fast (their DMA requests were rejected); the device stays paused until the
      // next client arrives.
      this.#pauseAccepting();
      await this.#host.clientGone();
      if (this.#session === session) this.#session = undefined;
      this.#resumeAccepting();
      if (last) this.onLastSession?.();
    });
  }

  #pauseAccepting(): void {
    if (this.#listenFd >= 0) this.#loop.remove(this.#listenFd);
  }

  #resumeAccepting(): void {
    if (this.#listenFd >= 0) this.#loop.add(this.#listenFd, C.EPOLLIN, () => this.#accept());
  }

  /** Stops accepting new clients (closes the listening socket); the current session goes on. */
  stopAccepting(): void {
    if (this.#listenFd < 0) return;
    this.#loop.remove(this.#listenFd);
    closeFd(this.#listenFd);
    this.#listenFd = -1;
  }

  /** Stops accepting and drops the current client. */
  stop(): void {
    if (this.#listenFd >= 0) {
      this.#loop.remove(this.#listenFd);
      closeFd(this.#listenFd);
      this.#listenFd = -1;
    }
    this.#session?.close();
  }
}

/** "pid 1234 (qemu-system-x86), uid 0, gid 0": who connected, for the log. */
export function describePeer(fd: number): string {
  try {
    const { pid, uid, gid } = peerCredentials(fd);
    const comm = pid > 0 ? readSmallFile(`/proc/${pid}/comm`, 64)?.trim() : undefined;
    return `pid ${pid}${comm ? ` (${comm})` : ""}, uid ${uid}, gid ${gid}`;
  } catch (e) {
    return `peer unknown (${(e as Error).message})`;
  }
}
