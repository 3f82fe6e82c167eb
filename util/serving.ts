/**
 * Where serving runs: the device, its client sessions and their event loop live on one Worker
 * thread that blocks in a synchronous `epoll_wait` (no hand-off to another thread per wake-up,
 * docs/ffi-notes.md), while the main thread stays free for what must never wait behind device
 * work: signals, the shutdown deadline and sd_notify. Both threads write their own log records
 * (set up the same way). They talk through structured messages (Worker → main: state changes)
 * and, towards the blocked
 * Worker, an eventfd in its epoll set plus a shared word saying what is asked.
 *
 * The Worker runs the program's own entry module again (so a bundled or compiled vfud carries
 * it), which recognises the Worker context and calls {@link serveWorkerMain}
 * (util/serve_worker.ts).
 *
 * @module
 */
import { closeFd } from "../sys/ffi.ts";
import { createEventfd, signalEventfd } from "../sys/event_loop.ts";
import type { LogConfig } from "../sys/log.ts";

/** What the Worker needs to create the device (sent before the socket exists). */
export interface DeviceInit {
  kind: "init";
  /** The `--device` argument, parsed again on the Worker. */
  deviceSpec: string;
  maxBounce: number;
  dmaChunk: number;
  /** The main thread's logging set-up: the Worker writes its records the same way itself. */
  log: LogConfig;
  /** `--trace-protocol` target, installed on the Worker (where the connections are). */
  trace?: string;
  /** eventfd the main thread signals to wake the Worker; the shared word says why. */
  bellFd: number;
  bell: SharedArrayBuffer;
  /** One float: the device's request counter (-1: it keeps none), refreshed by the Worker. */
  stats: SharedArrayBuffer;
}

/** The socket to serve, once the device exists. */
export interface SocketInit {
  kind: "socket";
  fd: number;
  /** A listening socket accepts clients; a connected one is the only client. */
  mode: "listening" | "connected";
}

/** Messages from the Worker. */
export type WorkerMessage =
  /** The device exists; `summary` describes it (image, size, netdev...). */
  | { kind: "created"; summary?: string }
  | { kind: "serving" }
  /** A client connected (`peer` says who), or left (no peer). */
  | { kind: "client"; peer?: string }
  /** The Worker wants the program to stop (the only client of a connected socket left). */
  | { kind: "stop"; why: string }
  | { kind: "stopped"; code: number }
  | { kind: "failed"; message: string };

/** Bits of the shared bell word. */
export const Bell = { STOP: 1 } as const;

/** The serving Worker as the main thread sees it. */
export class ServingThread {
  readonly #worker: Worker;
  readonly #bellFd = createEventfd();
  readonly #bell = new Int32Array(new SharedArrayBuffer(4));
  readonly #stats = new Float64Array(new SharedArrayBuffer(8));
  readonly #waiters = new Map<string, (m: WorkerMessage) => void>();
  #failed: ((e: Error) => void) | undefined;
  /** Called when the Worker asks the program to stop. */
  onStopRequest: ((why: string) => void) | undefined;
  /** Told who connected, and undefined when that client left. */
  onClient: ((peer: string | undefined) => void) | undefined;
  readonly done: Promise<number>;

  /** Starts the Worker on `entry` (a module that calls serveWorkerMain on a Worker). */
  constructor(entry: string | URL) {
    this.#worker = new Worker(entry, { type: "module", name: "vfud-serve" });
    let resolveDone!: (code: number) => void;
    let rejectDone!: (e: Error) => void;
    this.done = new Promise((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    this.done.catch(() => {}); // observed by whoever awaits it
    const fail = (e: Error) => {
      rejectDone(e);
      this.#failed?.(e);
    };
    this.#failed = undefined;
    this.#worker.onmessage = (ev: MessageEvent<WorkerMessage>) => {
      const m = ev.data;
      switch (m.kind) {
        case "stop":
          return this.onStopRequest?.(m.why);
        case "client":
          return this.onClient?.(m.peer);
        case "stopped":
          return resolveDone(m.code);
        case "failed":
          return fail(new Error(m.message));
        default:
          this.#waiters.get(m.kind)?.(m);
      }
    };
    this.#worker.onerror = (ev) => {
      ev.preventDefault();
      fail(new Error(`serving thread: ${ev.message}`));
    };
  }

  #expect(kind: string, send: unknown): Promise<WorkerMessage> {
    return new Promise((resolve, reject) => {
      this.#failed = reject;
      this.#waiters.set(kind, (m) => {
        this.#waiters.delete(kind);
        resolve(m);
      });
      this.#worker.postMessage(send);
    });
  }

  /** Creates the device on the Worker; rejects with the reason when it cannot. */
  async createDevice(
    init: Omit<DeviceInit, "kind" | "bellFd" | "bell" | "stats">,
  ): Promise<{ summary?: string }> {
    const msg: DeviceInit = {
      kind: "init",
      ...init,
      bellFd: this.#bellFd,
      bell: this.#bell.buffer as SharedArrayBuffer,
      stats: this.#stats.buffer as SharedArrayBuffer,
    };
    const m = await this.#expect("created", msg) as { summary?: string };
    return m.summary !== undefined ? { summary: m.summary } : {};
  }

  /** Hands the socket over; resolves once the Worker serves it. */
  async serve(fd: number, mode: SocketInit["mode"]): Promise<void> {
    await this.#expect("serving", { kind: "socket", fd, mode } satisfies SocketInit);
  }

  /** Requests the device took so far (undefined when it does not count them). */
  get requests(): number | undefined {
    const n = this.#stats[0];
    return n < 0 ? undefined : n;
  }

  /** Asks the Worker to stop: drain, flush, close; {@link done} then resolves. */
  requestStop(): void {
    Atomics.or(this.#bell, 0, Bell.STOP);
    signalEventfd(this.#bellFd);
  }

  /**
   * Ends the Worker (after {@link done}, or when giving up). With VFUD_PROFILE_GRACE_MS set, a
   * Worker that is ending on its own gets that long first (so `deno --cpu-prof` can write its
   * profile).
   */
  async terminate(): Promise<void> {
    const grace = Number(Deno.env.get("VFUD_PROFILE_GRACE_MS") ?? 0);
    if (grace > 0) await new Promise((r) => setTimeout(r, grace));
    this.#worker.terminate();
    closeFd(this.#bellFd);
  }
}

/** True when this code runs on a Worker thread rather than the main thread. */
export function onWorkerThread(): boolean {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  return typeof g.WorkerGlobalScope !== "undefined" && g instanceof g.WorkerGlobalScope;
}
