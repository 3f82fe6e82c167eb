/**
 * A vfio-user client for tests and tooling: the UNIX socket through transport/socket.ts, framing
 * and fd attribution through transport/connection.ts, all on the client's own
 * {@link EventLoop}, which runs in the background while the caller awaits replies.
 *
 * One reader demultiplexes everything the server sends: replies go to the request with the same
 * id and command; DMA_READ / DMA_WRITE requests from the server are answered from the client's
 * DMA maps ({@link ClientDmaMaps}); anything else is kept in {@link VfioUserClient.unsolicited}.
 * Protocol rules the server must keep (reply no longer than QEMU's buffer for it, error replies
 * of exactly 16 bytes, no DMA outside the maps) are checked on the way and any breach is listed
 * in {@link VfioUserClient.violations}, so tests can assert that it stayed empty.
 *
 * @module
 */
import {
  Command,
  commandName,
  Flags,
  type Header,
  SIZE as HEADER_SIZE,
} from "../protocol/header.ts";
import { DeviceGetInfo, type DeviceInfoReply } from "../protocol/device_info.ts";
import { DeviceGetRegionInfo, type RegionInfoReply } from "../protocol/region_info.ts";
import {
  DeviceGetIrqInfo,
  DeviceSetIrqs,
  type IrqInfoReply,
  type SetIrqsRequest,
} from "../protocol/irq.ts";
import {
  DmaMap,
  DmaMapFlags,
  DmaRead,
  DmaUnmap,
  type DmaUnmapEntry,
  DmaWrite,
} from "../protocol/dma.ts";
import { RegionRead, RegionWrite, RegionWriteMulti } from "../protocol/region_rw.ts";
import { Connection, type Message } from "../transport/connection.ts";
import { check, closeFd, libc } from "../sys/ffi.ts";
import { EventLoop } from "../sys/event_loop.ts";
import { C } from "../sys/layout.ts";
import type { GuestRam } from "./guest_ram.ts";
import { connectUnix } from "../sys/socket.ts";
import { type MessageWire, socketWire } from "../transport/wire.ts";
import { type ClientDmaMap, ClientDmaMaps } from "./dma_maps.ts";
import { ClientClosedError, Errno, ErrnoError, VfioUserRequestError } from "./errors.ts";
import { DEFAULT_TIMEOUT_MS, withTimeout } from "./util.ts";
import {
  decodeVersionReply,
  encodeVersionPayload,
  QEMU_CAPS_JSON,
  type VersionReply,
} from "./version.ts";

/** A message as the client received it (payload copied, fds owned by whoever takes it). */
export interface ClientMessage {
  header: Header;
  /** Bytes after the header (a copy). */
  payload: Uint8Array;
  /** Fds that came with it. Closed by the client unless a request's caller received them. */
  fds: number[];
  /** Set when the message was dropped for being larger than the client's limit. */
  error?: Error;
}

/** Shape of the client's DMA_WRITE replies (the server must accept all three). */
export type DmaWriteReplyShape = "spec" | "qemu" | "libvfio-user";

/** Options of {@link VfioUserClient}. */
export interface ClientOptions {
  /** Largest message the client accepts, header included. Default 4 MiB + 4 KiB. */
  maxMessageSize?: number;
  /** Default bound of every wait, in ms. Default {@link DEFAULT_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Answer the server's DMA_READ/DMA_WRITE from the DMA maps. Default true. */
  serveDma?: boolean;
  /**
   * DMA_WRITE reply shape: "spec" (address u64, count u32: 12 bytes, the spec's table),
   * "qemu" (header only, what QEMU 11.1 sends) or "libvfio-user" (address u64, count u64).
   * Default "spec".
   */
  dmaWriteReply?: DmaWriteReplyShape;
}

/** Options of one request. */
export interface RequestOptions {
  /** Fds to pass with the message (the caller keeps its own copies). */
  fds?: number[];
  /** Message id; by default the next free one. */
  id?: number;
  /** Extra header flag bits (e.g. `Flags.NO_REPLY` is set by {@link VfioUserClient.post}). */
  flags?: number;
  /** Bound of the wait for the reply. */
  timeoutMs?: number;
  /**
   * Largest acceptable reply size (header included); a longer reply is recorded as a
   * violation. Default: the request's size, QEMU's buffer for most replies.
   */
  maxReplySize?: number;
  /** Hand fds that come with the reply to the caller (else they are closed and flagged). */
  keepFds?: boolean;
}

/** Counters of the DMA requests the client served. */
export interface DmaStats {
  reads: number;
  writes: number;
  readBytes: number;
  writeBytes: number;
  /** Requests answered with an error reply. */
  errors: number;
}

/** Arguments of {@link VfioUserClient.dmaMap}. */
export interface DmaMapArgs {
  /** Guest address. */
  iova: bigint;
  /** Length in bytes. */
  size: bigint;
  /** Offset into `fd` (ignored by servers when no fd is sent). Default 0. */
  offset?: bigint;
  /** `DmaMapFlags` bits. Default READ|WRITE. */
  flags?: number;
  /** Fd to pass (memfd guest RAM): the server mmaps it. */
  fd?: number;
  /** Client bytes of the range, so the client can serve DMA messages for it. */
  backing?: Uint8Array;
}

/** Arguments of {@link VfioUserClient.setIrqs}. */
export type SetIrqsArgs =
  & Pick<SetIrqsRequest, "index" | "flags">
  & Partial<Pick<SetIrqsRequest, "start" | "count" | "data">>
  & {
    /** Eventfds (DATA_EVENTFD). */
    fds?: number[];
  };

/** One write of REGION_WRITE_MULTI. */
export interface MultiWrite {
  region: number;
  offset: bigint;
  /** At most 8 bytes. */
  data: Uint8Array;
}

interface Tap {
  onMessage(m: ClientMessage): void;
  fail(e: Error): void;
}

interface Pending {
  cmd: number;
  limit: number | undefined;
  keepFds: boolean;
  resolve: (m: ClientMessage) => void;
  reject: (e: Error) => void;
}

/** A connected vfio-user client. */
export class VfioUserClient {
  /** The client's event loop (running until {@link close}); eventfd waits use it too. */
  readonly loop: EventLoop;
  /** The socket fd. */
  readonly fd: number;
  /** DMA maps the server accepted, with the memory served for message-based ones. */
  readonly dma: ClientDmaMaps = new ClientDmaMaps();
  /** Protocol rules the server broke, one line each. Tests assert this stays empty. */
  readonly violations: string[] = [];
  /** Replies nobody waited for and server commands the client does not serve. */
  readonly unsolicited: ClientMessage[] = [];
  /** DMA requests served. */
  readonly dmaStats: DmaStats = { reads: 0, writes: 0, readBytes: 0, writeBytes: 0, errors: 0 };
  /** Server requests that arrived on the twin socket (see {@link attachTwin}). */
  twinRequests = 0;
  /** Default wait bound in ms. */
  readonly timeoutMs: number;
  #twin: Connection | undefined;
  readonly #conn: Connection;
  readonly #opts: Required<ClientOptions>;
  readonly #pending = new Map<number, Pending>();
  #taps: Tap[] = [];
  #nextId = 0;
  #closedReason: Error | undefined;
  #isClosed = false;
  readonly #closed: Promise<Error | undefined>;
  #resolveClosed!: (e: Error | undefined) => void;
  readonly #loopDone: Promise<void>;
  readonly #raw: MessageWire;
  readonly #closedAbort = new AbortController();
  /** Set while a raw send is writing: normal sends wait for it (no interleaving). */
  #rawBusy: Promise<void> | undefined;

  /**
   * Wraps a connected, non-blocking stream socket fd (e.g. one end of `socketPair()`), or one end
   * of an in-memory wire (transport/wire.ts).
   */
  constructor(fd: number | MessageWire, options: ClientOptions = {}) {
    this.#opts = {
      maxMessageSize: options.maxMessageSize ?? (4 << 20) + 4096,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      serveDma: options.serveDma ?? true,
      dmaWriteReply: options.dmaWriteReply ?? "spec",
    };
    this.timeoutMs = this.#opts.timeoutMs;
    const wire = typeof fd === "number" ? socketWire(fd) : fd;
    this.fd = wire.pollFd;
    this.#closed = new Promise((r) => this.#resolveClosed = r);
    this.loop = new EventLoop();
    this.#raw = wire;
    this.#conn = new Connection(this.loop, wire, this.#opts.maxMessageSize, {
      onMessage: (m) => this.#onMessage(m),
      onClose: (e) => this.#onClose(e),
    });
    this.#loopDone = this.loop.run().catch((e: Error) => {
      this.violations.push(`client event loop failed: ${e.stack ?? e.message}`);
      this.#conn.close(e);
    });
  }

  /** Connects to the server's UNIX socket at `path`. */
  static connect(path: string, options: ClientOptions = {}): Promise<VfioUserClient> {
    return Promise.resolve(new VfioUserClient(connectUnix(path), options));
  }

  /** True once the connection ended (either side). */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Resolves when the connection ends, with the transport's reason if it was an error. */
  get closed(): Promise<Error | undefined> {
    return this.#closed;
  }

  /** Aborted (with a {@link ClientClosedError}) when the connection ends: for bounded waits. */
  get closedSignal(): AbortSignal {
    return this.#closedAbort.signal;
  }

  /** Number of requests waiting for their reply. */
  get inFlight(): number {
    return this.#pending.size;
  }

  // ---------------------------------------------------------------------------------------------
  // Generic messaging

  /** Allocates a message id that no pending request uses (u16, wrapping). */
  nextId(): number {
    do this.#nextId = (this.#nextId + 1) & 0xffff; while (this.#pending.has(this.#nextId));
    return this.#nextId;
  }

  /**
   * Sends command `cmd` and resolves with its reply. An error reply rejects with
   * {@link VfioUserRequestError} (its `errno`); a closed connection with
   * {@link ClientClosedError}; no reply within the bound with `WaitTimeoutError`.
   */
  request(cmd: number, payload: Uint8Array = new Uint8Array(0), opts: RequestOptions = {}) {
    const id = opts.id ?? this.nextId();
    const reply = this.waitReply(id, cmd, {
      timeoutMs: opts.timeoutMs,
      maxReplySize: opts.maxReplySize ?? HEADER_SIZE + payload.length,
      keepFds: opts.keepFds,
    });
    const go = () => {
      try {
        this.#send(id, cmd, Flags.TYPE_COMMAND | (opts.flags ?? 0), payload, opts.fds ?? []);
      } catch (e) {
        this.#settle(id, undefined, e as Error);
      }
    };
    if (this.#rawBusy) this.#rawBusy.then(go, go);
    else go();
    return reply;
  }

  /**
   * Sends command `cmd` with NO_REPLY set; returns its id. No reply is expected. (While a raw
   * send is still writing, the message goes out right after it.)
   */
  post(cmd: number, payload: Uint8Array = new Uint8Array(0), opts: RequestOptions = {}): number {
    const id = opts.id ?? this.nextId();
    const flags = Flags.TYPE_COMMAND | Flags.NO_REPLY | (opts.flags ?? 0);
    const go = () => this.#send(id, cmd, flags, payload, opts.fds ?? []);
    if (this.#rawBusy) this.#rawBusy.then(go).catch(() => {});
    else go();
    return id;
  }

  #send(id: number, cmd: number, flags: number, payload: Uint8Array, fds: number[]): void {
    if (this.#isClosed) throw new ClientClosedError(commandName(cmd), this.#closedReason);
    this.#conn.send({ id, cmd, flags, error: 0 }, payload.length ? [payload] : [], fds);
  }

  /**
   * Waits for the reply with `id` and `cmd`. A reply that already arrived unclaimed (it is in
   * {@link unsolicited}) is taken from there. Register before sending where possible.
   */
  waitReply(
    id: number,
    cmd: number,
    opts: { timeoutMs?: number; maxReplySize?: number; keepFds?: boolean } = {},
  ): Promise<ClientMessage> {
    const early = this.unsolicited.findIndex((m) =>
      m.header.id === id && m.header.cmd === cmd &&
      (m.header.flags & Flags.TYPE_MASK) === Flags.TYPE_REPLY
    );
    if (early >= 0) {
      const [m] = this.unsolicited.splice(early, 1);
      return m.header.flags & Flags.ERROR
        ? Promise.reject(new VfioUserRequestError(cmd, id, m.header.error))
        : Promise.resolve(m);
    }
    if (this.#isClosed) {
      return Promise.reject(
        new ClientClosedError(`${commandName(cmd)} id ${id}`, this.#closedReason),
      );
    }
    if (this.#pending.has(id)) throw new Error(`a request with id ${id} is already pending`);
    const p = new Promise<ClientMessage>((resolve, reject) => {
      this.#pending.set(id, {
        cmd,
        limit: opts.maxReplySize,
        keepFds: opts.keepFds ?? false,
        resolve,
        reject,
      });
    });
    const ms = opts.timeoutMs ?? this.timeoutMs;
    return withTimeout(p, ms, `reply to ${commandName(cmd)} id ${id}`).catch((e) => {
      if (this.#pending.get(id)?.cmd === cmd) this.#pending.delete(id);
      throw e;
    });
  }

  /**
   * Resolves with the next message (of any kind) received after this call that passes
   * `filter`; it is also dispatched as usual. Rejects on timeout or disconnection.
   */
  nextMessage(
    opts: { timeoutMs?: number; filter?: (m: ClientMessage) => boolean } = {},
  ): Promise<ClientMessage> {
    if (this.#isClosed) {
      return Promise.reject(new ClientClosedError("next message", this.#closedReason));
    }
    let tap!: Tap;
    const p = new Promise<ClientMessage>((resolve, reject) => {
      tap = {
        onMessage: (m) => {
          if (opts.filter && !opts.filter(m)) return;
          this.#taps = this.#taps.filter((t) => t !== tap);
          resolve(m);
        },
        fail: reject,
      };
    });
    this.#taps.push(tap);
    return withTimeout(p, opts.timeoutMs ?? this.timeoutMs, "next message").finally(() => {
      this.#taps = this.#taps.filter((t) => t !== tap);
    });
  }

  /**
   * Writes `bytes` to the socket as they are (any header, any size field), with `fds` attached
   * to the first byte, waiting for room as needed. Commands issued meanwhile are sent after it;
   * do not call it while a normal send is still queued in the connection (large DMA replies).
   * Rejects with {@link ClientClosedError} once the connection is closed, the peer closing its
   * end during the write included, and with `WaitTimeoutError` when no room comes in time.
   */
  sendRaw(bytes: Uint8Array, fds: number[] = []): Promise<void> {
    const prev = this.#rawBusy ?? Promise.resolve();
    const p = prev.catch(() => {}).then(() => this.#writeRaw(bytes, fds));
    const busy: Promise<void> = p.catch(() => {}).finally(() => {
      if (this.#rawBusy === busy) this.#rawBusy = undefined;
    });
    this.#rawBusy = busy;
    return p;
  }

  async #writeRaw(bytes: Uint8Array, fds: number[]): Promise<void> {
    let off = 0;
    let first = true;
    while (off < bytes.length || first) {
      if (this.#isClosed) throw new ClientClosedError("raw send", this.#closedReason);
      const n = this.#sendRawPart(bytes.subarray(off), first ? fds : []);
      if (n < 0) {
        await this.#writable();
        continue;
      }
      first = false;
      off += n;
      if (bytes.length === 0) break;
    }
  }

  /**
   * One write of a raw send. A peer that closed its end (EPIPE, ECONNRESET: a server ends the
   * connection on broken framing, possibly while a large message is still being written) ends
   * the connection here as it does for any other send, with that reason, even when our own loop
   * has not read the end of stream yet: the caller sees a closed client, not a bare socket error.
   */
  #sendRawPart(bytes: Uint8Array, fds: number[]): number {
    try {
      return this.#raw.send([bytes], fds);
    } catch (e) {
      if (!(e instanceof ErrnoError) || (e.errno !== Errno.EPIPE && e.errno !== Errno.ECONNRESET)) {
        throw e;
      }
      this.#conn.close(e);
      throw new ClientClosedError("raw send", e);
    }
  }

  /**
   * Sends raw bytes that form a command and waits for the reply with the id and command in
   * their header (no reply-size check), after the bytes were all written. See {@link sendRaw}.
   */
  async rawRequest(
    bytes: Uint8Array,
    fds: number[] = [],
    timeoutMs?: number,
  ): Promise<ClientMessage> {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const reply = this.waitReply(v.getUint16(0, true), v.getUint16(2, true), { timeoutMs });
    reply.catch(() => {}); // observed below; avoid an unhandled rejection while sending
    await this.sendRaw(bytes, fds);
    return await reply;
  }

  /** Resolves when the socket can take more bytes (EPOLLOUT on a duplicate of the fd). */
  #writable(): Promise<void> {
    const dup = check("fcntl F_DUPFD_CLOEXEC", libc.fcntl(this.fd, C.F_DUPFD_CLOEXEC, 0));
    const done = () => {
      this.loop.remove(dup);
      closeFd(dup);
    };
    const p = new Promise<void>((resolve) => {
      this.loop.add(dup, C.EPOLLOUT | C.EPOLLHUP | C.EPOLLERR, () => resolve());
    });
    return withTimeout(p, this.timeoutMs, "socket writable").finally(done);
  }

  // ---------------------------------------------------------------------------------------------
  // Receiving

  #onMessage(m: Message): void {
    const msg: ClientMessage = { header: m.header, payload: m.payload.slice(), fds: m.fds };
    if (m.error) {
      msg.error = m.error;
      this.violations.push(`server sent an oversized message: ${m.error.message}`);
    }
    for (const t of [...this.#taps]) t.onMessage(msg);
    const type = m.header.flags & Flags.TYPE_MASK;
    if (type === Flags.TYPE_REPLY) {
      const p = this.#pending.get(m.header.id);
      if (p && p.cmd === m.header.cmd) {
        this.#checkReply(msg, p.limit);
        if (msg.fds.length && !p.keepFds) {
          this.violations.push(
            `${commandName(m.header.cmd)} id ${m.header.id}: reply carries ${msg.fds.length} fds`,
          );
          msg.fds.forEach(closeFd);
          msg.fds = [];
        }
        this.#settle(m.header.id, msg);
        return;
      }
    } else if (
      type === Flags.TYPE_COMMAND && this.#opts.serveDma && !m.error &&
      (m.header.cmd === Command.DMA_READ || m.header.cmd === Command.DMA_WRITE)
    ) {
      msg.fds.forEach(closeFd);
      if (msg.fds.length) this.violations.push(`server sent fds with ${commandName(m.header.cmd)}`);
      this.#serveDma(msg);
      return;
    }
    msg.fds.forEach(closeFd);
    this.unsolicited.push(msg);
  }

  #checkReply(m: ClientMessage, limit: number | undefined): void {
    const h = m.header;
    const name = `${commandName(h.cmd)} id ${h.id}`;
    if (h.flags & Flags.ERROR && h.size !== HEADER_SIZE) {
      this.violations.push(`${name}: error reply of ${h.size} bytes (must be the header alone)`);
    }
    if (limit !== undefined && h.size > limit) {
      this.violations.push(`${name}: reply of ${h.size} bytes exceeds the client's ${limit}`);
    }
    if (h.flags & Flags.NO_REPLY) this.violations.push(`${name}: reply carries NO_REPLY`);
  }

  #settle(id: number, msg: ClientMessage | undefined, err?: Error): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    if (err) return p.reject(err);
    if (msg!.header.flags & Flags.ERROR) {
      msg!.fds.forEach(closeFd);
      return p.reject(new VfioUserRequestError(p.cmd, id, msg!.header.error));
    }
    p.resolve(msg!);
  }

  #onClose(e: Error | undefined): void {
    this.#isClosed = true;
    this.#closedReason = e;
    const pending = [...this.#pending.entries()];
    this.#pending.clear();
    for (const [id, p] of pending) {
      p.reject(new ClientClosedError(`${commandName(p.cmd)} id ${id}`, e));
    }
    for (const t of this.#taps.splice(0)) t.fail(new ClientClosedError("next message", e));
    this.#closedAbort.abort(new ClientClosedError("connection", e));
    this.#resolveClosed(e);
  }

  // ---------------------------------------------------------------------------------------------
  // Serving DMA_READ / DMA_WRITE

  /**
   * twin_socket: the server sends its DMA requests on a second socket, whose end came with the
   * VERSION reply; they are served (and answered) there, counted in {@link twinRequests}.
   */
  attachTwin(fd: number): void {
    const twin: Connection = new Connection(this.loop, fd, this.#opts.maxMessageSize, {
      onMessage: (m) => {
        m.fds.forEach(closeFd);
        const isDma = m.header.cmd === Command.DMA_READ || m.header.cmd === Command.DMA_WRITE;
        if ((m.header.flags & Flags.TYPE_MASK) !== Flags.TYPE_COMMAND || !isDma || m.error) {
          this.violations.push(`unexpected ${commandName(m.header.cmd)} on the twin socket`);
          return;
        }
        this.twinRequests++;
        this.#serveDma({ header: m.header, payload: m.payload.slice(), fds: [] }, twin);
      },
      onClose: () => {},
    });
    this.#twin = twin;
  }

  /**
   * DMA requests the server sent while {@link ClientOptions.serveDma} was off (they wait in
   * {@link unsolicited}): a test holds them back to see what the server does meanwhile.
   */
  heldDma(): ClientMessage[] {
    return this.unsolicited.filter((m) =>
      (m.header.flags & Flags.TYPE_MASK) === Flags.TYPE_COMMAND &&
      (m.header.cmd === Command.DMA_READ || m.header.cmd === Command.DMA_WRITE)
    );
  }

  /** Answers the held DMA requests (see {@link heldDma}) in order; returns how many. */
  serveHeldDma(): number {
    const held = this.heldDma();
    this.unsolicited.splice(
      0,
      this.unsolicited.length,
      ...this.unsolicited.filter((m) => !held.includes(m)),
    );
    if (!this.#isClosed) { for (const m of held) this.#serveDma(m); }
    return held.length;
  }

  /** Whether DMA requests are served as they arrive (see {@link ClientOptions.serveDma}). */
  set serveDma(on: boolean) {
    this.#opts.serveDma = on;
  }

  #serveDma(m: ClientMessage, conn: Connection = this.#conn): void {
    const h = m.header;
    const read = h.cmd === Command.DMA_READ;
    let reply: Uint8Array;
    try {
      if (read) {
        const req = DmaRead.decodeRequest(m.payload);
        const r = this.dma.lookup(req.address, req.count, false);
        if ("errno" in r) return this.#dmaError(h, r.errno, r.why, conn);
        reply = DmaRead.encodeReply({ address: req.address, data: r.bytes });
        this.dmaStats.reads++;
        this.dmaStats.readBytes += r.bytes.length;
      } else {
        const req = DmaWrite.decodeRequest(m.payload);
        const r = this.dma.lookup(req.address, BigInt(req.data.length), true);
        if ("errno" in r) return this.#dmaError(h, r.errno, r.why, conn);
        r.bytes.set(req.data);
        this.dmaStats.writes++;
        this.dmaStats.writeBytes += req.data.length;
        reply = this.#dmaWriteReply(req.address, req.data.length);
      }
    } catch (e) {
      return this.#dmaError(h, Errno.EINVAL, `malformed: ${(e as Error).message}`, conn);
    }
    if (h.flags & Flags.NO_REPLY) return;
    conn.send(
      { id: h.id, cmd: h.cmd, flags: Flags.TYPE_REPLY, error: 0 },
      reply.length ? [reply] : [],
    );
  }

  #dmaWriteReply(address: bigint, count: number): Uint8Array {
    switch (this.#opts.dmaWriteReply) {
      case "qemu":
        return new Uint8Array(0);
      case "libvfio-user":
        return DmaWrite.encodeReply({ address, count: BigInt(count) });
      case "spec": {
        const out = new Uint8Array(12);
        const v = new DataView(out.buffer);
        v.setBigUint64(0, address, true);
        v.setUint32(8, count, true);
        return out;
      }
    }
  }

  #dmaError(h: Header, errno: number, why: string, conn: Connection): void {
    this.dmaStats.errors++;
    this.violations.push(`server ${commandName(h.cmd)} id ${h.id} refused: ${why}`);
    if (h.flags & Flags.NO_REPLY || this.#isClosed) return;
    if (conn.closed) return;
    conn.send({ id: h.id, cmd: h.cmd, flags: Flags.TYPE_REPLY | Flags.ERROR, error: errno });
  }

  // ---------------------------------------------------------------------------------------------
  // Commands

  /**
   * VERSION. `json` is sent verbatim (default: QEMU 11.1's capabilities, so the message is
   * QEMU's 214 bytes); `null` sends no JSON at all.
   */
  async version(
    json: string | null = QEMU_CAPS_JSON,
    opts: RequestOptions & { major?: number; minor?: number } = {},
  ): Promise<VersionReply> {
    const payload = encodeVersionPayload(opts.major ?? 0, opts.minor ?? 0, json);
    const r = await this.request(Command.VERSION, payload, opts);
    return decodeVersionReply(r.payload);
  }

  /**
   * DMA_MAP. With `fd` the server mmaps the memory; with `backing` the client serves DMA
   * messages for the range. The map is recorded in {@link dma} once the server accepted it.
   */
  async dmaMap(args: DmaMapArgs, opts: RequestOptions = {}): Promise<void> {
    const flags = args.flags ?? DmaMapFlags.READ | DmaMapFlags.WRITE;
    const payload = DmaMap.encodeRequest({
      flags,
      offset: args.offset ?? 0n,
      address: args.iova,
      size: args.size,
    });
    const fds = args.fd === undefined ? [] : [args.fd];
    const r = await this.request(Command.DMA_MAP, payload, { ...opts, fds });
    DmaMap.decodeReply(r.payload);
    const map: ClientDmaMap = { iova: args.iova, size: args.size, flags, viaFd: fds.length > 0 };
    if (args.backing) map.backing = args.backing.subarray(0, Number(args.size));
    this.dma.add(map);
  }

  /**
   * DMA_MAP of guest RAM `ram` at guest address `iova`: with its fd when it has one (the server
   * mmaps it), and with its bytes as the backing the client serves DMA messages from.
   */
  mapRam(ram: GuestRam, iova = 0n, opts: RequestOptions & { flags?: number } = {}): Promise<void> {
    const { flags, ...rest } = opts;
    const size = BigInt(ram.size);
    return this.dmaMap({ iova, size, fd: ram.fd, backing: ram.bytes, flags }, rest);
  }

  /** DMA_UNMAP of exactly [iova, iova+size); `flags` 2 (ALL) with 0/0 drops every map. */
  async dmaUnmap(
    args: { iova: bigint; size: bigint; flags?: number; argsz?: number },
    opts: RequestOptions = {},
  ): Promise<DmaUnmapEntry> {
    const req = {
      argsz: args.argsz ?? DmaUnmap.SIZE,
      flags: args.flags ?? 0,
      address: args.iova,
      size: args.size,
    };
    const r = await this.request(Command.DMA_UNMAP, DmaUnmap.encodeRequest(req), opts);
    const entry = DmaUnmap.decodeReply(r.payload);
    if (req.flags & 2) this.dma.clear();
    else this.dma.remove(args.iova, args.size);
    return entry;
  }

  /** DEVICE_GET_INFO. */
  async getInfo(opts: RequestOptions & { argsz?: number } = {}): Promise<DeviceInfoReply> {
    const payload = DeviceGetInfo.encodeRequest({ argsz: opts.argsz ?? DeviceGetInfo.SIZE });
    const r = await this.request(Command.DEVICE_GET_INFO, payload, opts);
    return DeviceGetInfo.decodeReply(r.payload);
  }

  /** DEVICE_GET_REGION_INFO (argsz 32 like QEMU unless given); the reply may not exceed argsz. */
  async getRegionInfo(
    index: number,
    opts: RequestOptions & { argsz?: number } = {},
  ): Promise<RegionInfoReply> {
    const argsz = opts.argsz ?? DeviceGetRegionInfo.SIZE;
    const payload = DeviceGetRegionInfo.encodeRequest({ argsz, index });
    const r = await this.request(Command.DEVICE_GET_REGION_INFO, payload, {
      maxReplySize: HEADER_SIZE + argsz,
      ...opts,
    });
    return DeviceGetRegionInfo.decodeReply(r.payload);
  }

  /** DEVICE_GET_IRQ_INFO. */
  async getIrqInfo(index: number, opts: RequestOptions = {}): Promise<IrqInfoReply> {
    const payload = DeviceGetIrqInfo.encodeRequest({ argsz: DeviceGetIrqInfo.SIZE, index });
    const r = await this.request(Command.DEVICE_GET_IRQ_INFO, payload, opts);
    return DeviceGetIrqInfo.decodeReply(r.payload);
  }

  /** DEVICE_SET_IRQS; eventfds in `args.fds` travel with the message. */
  async setIrqs(args: SetIrqsArgs, opts: RequestOptions = {}): Promise<void> {
    const payload = DeviceSetIrqs.encodeRequest({
      flags: args.flags,
      index: args.index,
      start: args.start ?? 0,
      count: args.count ?? 0,
      data: args.data ?? new Uint8Array(0),
    });
    const r = await this.request(Command.DEVICE_SET_IRQS, payload, {
      ...opts,
      fds: args.fds ?? [],
    });
    DeviceSetIrqs.decodeReply(r.payload);
  }

  /** REGION_READ of `count` bytes; checks the echoed fields and returns the data. */
  async regionRead(
    region: number,
    offset: bigint | number,
    count: number,
    opts: RequestOptions = {},
  ): Promise<Uint8Array> {
    const off = BigInt(offset);
    const payload = RegionRead.encodeRequest({ offset: off, region, count });
    const r = await this.request(Command.REGION_READ, payload, {
      maxReplySize: HEADER_SIZE + RegionRead.SIZE + count,
      ...opts,
    });
    const d = RegionRead.decodeReply(r.payload);
    if (d.region !== region || d.offset !== off || d.data.length !== count) {
      this.violations.push(
        `REGION_READ id ${r.header.id}: reply echoes region ${d.region} offset ${d.offset} ` +
          `count ${d.data.length}, asked ${region}/${off}/${count}`,
      );
    }
    return d.data;
  }

  /**
   * REGION_WRITE. With `noReply` the write is posted (NO_REPLY, like QEMU's BAR writes) and the
   * promise resolves once it is handed to the socket.
   */
  async regionWrite(
    region: number,
    offset: bigint | number,
    data: Uint8Array,
    opts: RequestOptions & { noReply?: boolean } = {},
  ): Promise<void> {
    const payload = RegionWrite.encodeRequest({ offset: BigInt(offset), region, data });
    if (opts.noReply) {
      this.post(Command.REGION_WRITE, payload, opts);
      return;
    }
    const r = await this.request(Command.REGION_WRITE, payload, opts);
    const a = RegionWrite.decodeReply(r.payload);
    if (a.region !== region || a.offset !== BigInt(offset) || a.count !== data.length) {
      this.violations.push(`REGION_WRITE id ${r.header.id}: reply does not echo the request`);
    }
  }

  /** REGION_WRITE_MULTI; returns the server's wr_cnt. */
  async writeMulti(writes: readonly MultiWrite[], opts: RequestOptions = {}): Promise<number> {
    const payload = RegionWriteMulti.encodeRequest(
      writes.map((w) => ({ offset: w.offset, region: w.region, data: w.data })),
    );
    const r = await this.request(Command.REGION_WRITE_MULTI, payload, opts);
    return RegionWriteMulti.decodeReply(r.payload).wrCnt;
  }

  /** DEVICE_RESET; returns the whole reply size (QEMU needs exactly 16). */
  async reset(opts: RequestOptions = {}): Promise<number> {
    const r = await this.request(Command.DEVICE_RESET, new Uint8Array(0), opts);
    if (r.payload.length !== 0) {
      this.violations.push(`DEVICE_RESET reply has ${r.payload.length} payload bytes`);
    }
    return r.header.size;
  }

  // ---------------------------------------------------------------------------------------------

  /** Closes the connection (if still open) and stops the event loop; idempotent. */
  async close(): Promise<void> {
    if (!this.#isClosed) this.#conn.close();
    this.#twin?.close();
    this.loop.stop();
    await this.#loopDone;
  }

  /** `await using client = await VfioUserClient.connect(...)` closes it at scope end. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
