/**
 * Requests the server sends to the client (DMA_READ / DMA_WRITE, spec "VFIO_USER_DMA_READ"),
 * matched to their replies by message id. Any number may be in flight; replies arrive
 * interleaved with client commands and are handed here by the session's demultiplexer.
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";
import { commandName, Flags, type Header } from "../protocol/header.ts";
import type { Connection } from "../transport/connection.ts";

/** The client answered one of our requests with an error reply (its errno). */
export class ClientRefusal extends ErrnoError {
  /** The command refused. */
  readonly cmd: number;
  constructor(cmd: number, errno: number) {
    super(errno || Errno.EIO, `${commandName(cmd)} failed in the client (errno ${errno})`);
    this.name = "ClientRefusal";
    this.cmd = cmd;
  }
}

interface Pending {
  cmd: number;
  /** Consumes the reply payload synchronously (it is only valid during the call). */
  onReply: (payload: Uint8Array) => void;
  reject: (e: Error) => void;
}

/** Our outstanding requests on one connection. */
export class ServerRequests {
  readonly #conn: Connection;
  readonly #pending = new Map<number, Pending>();
  /** Ids of cancelled requests whose replies may still come: not reused, replies dropped. */
  readonly #abandoned = new Set<number>();
  #nextId = 0;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** Number of requests waiting for a reply. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Sends a request and resolves with whatever `onReply` returns for the reply payload;
   * rejects with {@link ClientRefusal} on an error reply, or when the connection ends.
   */
  request<T>(
    cmd: number,
    parts: readonly Uint8Array[],
    onReply: (payload: Uint8Array) => T,
  ): Promise<T> {
    if (this.#conn.closed) {
      return Promise.reject(new ErrnoError(Errno.ECONNRESET, "client disconnected"));
    }
    const id = this.#allocId();
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, {
        cmd,
        reject,
        onReply: (p) => resolve(onReply(p)),
      });
      this.#conn.send({ id, cmd, flags: Flags.TYPE_COMMAND, error: 0 }, parts);
    });
  }

  #allocId(): number {
    // u16 ids; skip ones still in flight (wrap-around with 65536 outstanding cannot happen:
    // the bounce-buffer limit bounds concurrency far below that).
    do this.#nextId = (this.#nextId + 1) & 0xffff; while (
      this.#pending.has(this.#nextId) || this.#abandoned.has(this.#nextId)
    );
    return this.#nextId;
  }

  /** Routes a reply from the client. Unknown ids are logged by the caller and dropped. */
  onReply(h: Header, payload: Uint8Array): boolean {
    const p = this.#pending.get(h.id);
    if (!p || p.cmd !== h.cmd) return this.#abandoned.delete(h.id);
    this.#pending.delete(h.id);
    if (h.flags & Flags.ERROR) {
      p.reject(new ClientRefusal(h.cmd, h.error));
      return true;
    }
    try {
      p.onReply(payload);
    } catch (e) {
      p.reject(e as Error);
    }
    return true;
  }

  /** Fails every outstanding request (the connection is gone). */
  failAll(e: Error): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    this.#abandoned.clear();
    for (const p of all) p.reject(e);
  }

  /**
   * Fails every outstanding request now while the connection goes on: their replies, when they
   * come, are dropped (their ids stay reserved until then).
   */
  cancelAll(e: Error): void {
    const all = [...this.#pending.entries()];
    this.#pending.clear();
    for (const [id, p] of all) {
      this.#abandoned.add(id);
      p.reject(e);
    }
  }
}
