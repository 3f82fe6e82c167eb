/**
 * One client connection: demultiplexes client commands from replies to our own requests,
 * runs commands in order of arrival, and is the one place where an error becomes an error reply
 * (spec, "Header": the header alone with ERROR set and the errno).
 *
 * Commands run one at a time; a command whose handler waits (reset draining device requests)
 * holds back later commands but never the reading of the socket, so replies to our DMA
 * requests keep flowing (a client serves those while it waits for us).
 *
 * @module
 */
import { tracing } from "../sys/log.ts";
import type { Logger } from "@logtape/logtape";
import { ensure, VfioUserError } from "../protocol/errors.ts";
import { Errno, ErrnoError, errnoOf } from "../sys/errno.ts";
import { Command, commandName, Flags, type Header, messageType } from "../protocol/header.ts";
import { isKnownCommand } from "../protocol/message.ts";
import { SessionMemory } from "../dma/memory.ts";
import { DmaTable } from "../dma/table.ts";
import { Connection, type Message } from "../transport/connection.ts";
import type { MessageWire } from "../transport/wire.ts";
import { closeFd } from "../sys/ffi.ts";
import { socketPair } from "../sys/socket.ts";
import type { EventLoop } from "../sys/event_loop.ts";
import type { DeviceHost } from "./host.ts";
import { commandHandlers, type HandlerResult, type SessionState } from "./handlers.ts";
import { ServerRequests } from "./requests.ts";
import { RequestDma } from "./message_dma.ts";
import { DEFAULT_MAX_BITMAP } from "./migration_handlers.ts";

/** Session limits and capabilities. */
export interface SessionOptions {
  /** Largest message accepted (header included). */
  maxMessageSize: number;
  /** Largest data payload of one REGION_READ/WRITE or DMA message we offer. */
  maxDataXferSize: number;
  maxMsgFds: number;
  maxDmaMaps: number;
  /** Cap of the data in one DMA_READ/DMA_WRITE message we send. */
  dmaChunk: number;
}

/** Commands whose handlers never wait (server/handlers.ts): they may run on the received bytes. */
const SYNC_COMMANDS: ReadonlySet<number> = new Set([
  Command.VERSION,
  Command.DMA_MAP,
  Command.DMA_UNMAP,
  Command.DEVICE_GET_INFO,
  Command.DEVICE_GET_REGION_INFO,
  Command.DEVICE_GET_REGION_IO_FDS,
  Command.DEVICE_GET_IRQ_INFO,
  Command.DEVICE_SET_IRQS,
  Command.REGION_READ,
  Command.REGION_WRITE,
  Command.REGION_WRITE_MULTI,
]);

/** Commands waiting behind a running one before the client is considered runaway. */
export const MAX_QUEUED_COMMANDS = 4096;
/** Payload bytes of those commands before the client is considered runaway. */
export const MAX_QUEUED_COMMAND_BYTES = 16 << 20;

interface Queued {
  header: Header;
  payload: Uint8Array;
  fds: number[];
}

/** A connected client. */
export class Session implements SessionState {
  readonly host: DeviceHost;
  readonly options: SessionOptions;
  readonly dma: DmaTable;
  readonly memory: SessionMemory;
  /** Our requests to the client: on the main socket, or on the twin socket once set up. */
  requests: ServerRequests;
  readonly log: Logger;
  /** Set once VERSION succeeded; every other command needs it first. */
  negotiated = false;
  /** The negotiated max_data_xfer_size (DMA message size cap). */
  clientMaxXfer = 1 << 20;
  /** Commands answered so far. */
  commands = 0;
  /** Dirty logging limits from VERSION's `migration` capability (ours when it had none). */
  dirtyLimits = { pgsize: 4096n, maxBitmapSize: DEFAULT_MAX_BITMAP };
  readonly #conn: Connection;
  readonly #loop: EventLoop;
  #twin: Connection | undefined;
  readonly #queue: Queued[] = [];
  #queuedBytes = 0;
  #busy = false;
  readonly #closed: Promise<Error | undefined>;
  #resolveClosed!: (e: Error | undefined) => void;

  constructor(
    loop: EventLoop,
    fd: number | MessageWire,
    host: DeviceHost,
    options: SessionOptions,
    log: Logger,
    rxBuffer?: Uint8Array,
  ) {
    this.host = host;
    this.options = options;
    this.log = log;
    this.#loop = loop;
    this.dma = new DmaTable(options.maxDmaMaps);
    this.memory = new SessionMemory(this.dma);
    this.#closed = new Promise((r) => this.#resolveClosed = r);
    this.#conn = new Connection(
      loop,
      fd,
      options.maxMessageSize,
      {
        onMessage: (m) => this.#onMessage(m),
        onClose: (e) => this.#onClose(e),
      },
      undefined,
      rxBuffer,
    );
    this.requests = new ServerRequests(this.#conn);
    host.clientArrived(this.memory);
  }

  /**
   * twin_socket (spec, "Version"): server-to-client requests move to a new socket pair whose
   * other end goes to the client with the VERSION reply. Returns that end.
   */
  openTwinSocket(): number {
    const [ours, theirs] = socketPair();
    this.#twin = new Connection(this.#loop, ours, this.options.maxMessageSize, {
      onMessage: (m) => {
        m.fds.forEach(closeFd);
        if (messageType(m.header) === Flags.TYPE_REPLY) this.requests.onReply(m.header, m.payload);
        else this.log.warn("ignoring a command on the twin socket");
      },
      onClose: () => this.close(), // losing either socket ends the session
    });
    this.requests = new ServerRequests(this.#twin);
    return theirs;
  }

  /** Called once VERSION settled the limits: message-based DMA becomes usable. */
  enableMessageDma(): void {
    const chunk = Math.min(this.clientMaxXfer, this.options.dmaChunk);
    const onWriteError = (e: Error) => {
      if (this.#conn.closed) return; // the client left: its memory is gone anyway
      if (e instanceof VfioUserError && e.errno === Errno.ECANCELED) return; // a device reset
      this.log.error("posted DMA_WRITE failed, guest data lost: {error}", { error: e.message });
    };
    this.memory.setMessageDma(new RequestDma(this.requests, this.host.bounce, chunk, onWriteError));
  }

  /** True once the connection is closed (the teardown may still be running). */
  get ended(): boolean {
    return this.#conn.closed;
  }

  /** Resolves when the connection ended, with the reason if it was an error. */
  get closed(): Promise<Error | undefined> {
    return this.#closed;
  }

  /** Ends the session. */
  close(reason?: Error): void {
    this.#conn.close(reason);
  }

  #onMessage(m: Message): void {
    if (messageType(m.header) === Flags.TYPE_REPLY) {
      m.fds.forEach(closeFd); // no reply to our requests carries fds
      this.requests.onReply(m.header, m.payload);
      return;
    }
    if (m.error) {
      m.fds.forEach(closeFd); // fds of a message dropped unread are ours to close
      return this.#reply(m.header, m.error);
    }
    // The common case, nothing queued or running: a command whose handler is synchronous runs
    // now, on the payload as received (no copy, no queue, no promise).
    if (!this.#busy && this.#queue.length === 0 && SYNC_COMMANDS.has(m.header.cmd)) {
      let result: HandlerResult | Promise<HandlerResult> | Error;
      try {
        result = this.#dispatch(m);
      } catch (e) {
        result = e as Error;
      } finally {
        m.fds.forEach(closeFd); // handlers take the fds they keep out of the array
      }
      if (!(result instanceof Promise)) return this.#reply(m.header, result);
      // (a handler of the list that waited after all: its reply waits too, and so does the queue)
      this.#busy = true;
      const header = m.header;
      void result.then((r) => r, (e: Error) => e).then((r) => {
        this.#reply(header, r);
        this.#busy = false;
        if (this.#queue.length) this.#drain();
      });
      return;
    }
    // Payload views point into the receive buffer: copy before queueing.
    if (
      this.#queue.length >= MAX_QUEUED_COMMANDS ||
      this.#queuedBytes + m.payload.length > MAX_QUEUED_COMMAND_BYTES
    ) {
      // Commands only pile up behind a handler that waits (a reset draining requests); a client
      // that keeps sending meanwhile without waiting for replies is not a VMM we can serve.
      m.fds.forEach(closeFd);
      this.close(
        new VfioUserError(
          Errno.EBUSY,
          `more than ${MAX_QUEUED_COMMANDS} queued commands or ${MAX_QUEUED_COMMAND_BYTES} bytes`,
        ),
      );
      return;
    }
    this.#queuedBytes += m.payload.length;
    this.#queue.push({ header: m.header, payload: m.payload.slice(), fds: m.fds });
    if (!this.#busy) this.#drain();
  }

  async #drain(): Promise<void> {
    this.#busy = true;
    while (this.#queue.length && !this.#conn.closed) {
      const q = this.#queue.shift()!;
      this.#queuedBytes -= q.payload.length;
      let result: HandlerResult | Error;
      try {
        const r = this.#dispatch(q);
        result = r instanceof Promise ? await r : r;
      } catch (e) {
        result = e as Error;
      } finally {
        q.fds.forEach(closeFd); // handlers take the fds they keep out of the array
      }
      this.#reply(q.header, result);
    }
    this.#busy = false;
    if (this.#conn.closed) this.#dropQueue();
  }

  #dispatch(q: Queued): HandlerResult | Promise<HandlerResult> {
    const { header } = q;
    ensure(messageType(header) === Flags.TYPE_COMMAND, `message type ${messageType(header)}`);
    if (!isKnownCommand(header.cmd)) {
      throw new VfioUserError(Errno.ENOSYS, `unknown command ${header.cmd}`);
    }
    if (!this.negotiated && header.cmd !== Command.VERSION) {
      throw new VfioUserError(Errno.EINVAL, `${commandName(header.cmd)} before VERSION`);
    }
    const handler = commandHandlers[header.cmd];
    if (!handler) {
      throw new VfioUserError(Errno.ENOTSUP, `${commandName(header.cmd)} is not served`);
    }
    return handler(this, q.payload, q.fds, header);
  }

  /** The one place a handler's outcome becomes a reply (or none, for NO_REPLY). */
  #reply(h: Header, result: HandlerResult | Error): void {
    const name = commandName(h.cmd);
    this.commands++;
    if (tracing(this.log)) {
      this.log.trace("{cmd} id {id} ({size} bytes): {outcome}", {
        cmd: name,
        id: h.id,
        size: h.size,
        outcome: result instanceof Error
          ? `error ${result instanceof VfioUserError ? result.errno : Errno.EIO}`
          : `ok, ${result.payload?.length ?? 0} bytes${
            result.fds?.length ? ` + ${result.fds.length} fds` : ""
          }`,
      });
    }
    if (result instanceof Error) {
      // An error that carries an errno was foreseen (peer input, guest fault, failed syscall);
      // any other is a bug of ours: EIO, logged as an error.
      const errno = errnoOf(result);
      const level = result instanceof ErrnoError ? "warn" : "error";
      this.log[level]("{cmd} id {id} failed: {error}", {
        cmd: name,
        id: h.id,
        error: result.message,
      });
      if (h.flags & Flags.NO_REPLY || this.#conn.closed) return;
      this.#conn.send({
        id: h.id,
        cmd: h.cmd,
        flags: Flags.TYPE_REPLY | Flags.ERROR,
        error: errno,
      });
      return;
    }
    if (!(h.flags & Flags.NO_REPLY) && !this.#conn.closed) {
      this.#conn.send(
        { id: h.id, cmd: h.cmd, flags: Flags.TYPE_REPLY, error: 0 },
        result.payload ? [result.payload] : [],
        result.fds ?? [],
      );
    }
    result.afterSend?.();
  }

  #dropQueue(): void {
    for (const q of this.#queue.splice(0)) q.fds.forEach(closeFd);
    this.#queuedBytes = 0;
  }

  #onClose(e: Error | undefined): void {
    this.#twin?.close();
    this.#dropQueue();
    const gone = new ErrnoError(Errno.ECONNRESET, "client disconnected");
    this.requests.failAll(gone);
    this.host.bounce.failWaiters(gone);
    void this.host.clientGone();
    this.dma.clear();
    this.#resolveClosed(e);
  }
}
