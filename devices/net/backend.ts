/**
 * The packet backend interface shared by network device models: a NIC hands complete Ethernet
 * frames (no FCS) to {@link NetBackend.send} and gets received frames through the handlers it
 * attaches. Backends never block: they are driven by the process's epoll EventLoop and queue
 * what the kernel does not take at once.
 *
 * @module
 */

/** What a NIC model listens to. */
export interface NetHandlers {
  /** A frame arrived (without FCS). The array belongs to the receiver. */
  receive(frame: Uint8Array): void;
  /** The carrier changed (e.g. a stream peer connected or went away). */
  linkChanged(up: boolean): void;
}

/** Counters every backend keeps. */
export interface NetBackendStats {
  txFrames: number;
  txBytes: number;
  /** Frames dropped on send: no peer, queue full, or a write error. */
  txDropped: number;
  rxFrames: number;
  rxBytes: number;
}

/** A source and sink of Ethernet frames. */
export interface NetBackend {
  /** "tap", "stream", "memory"... */
  readonly kind: string;
  /** Carrier: a peer can receive what is sent. */
  readonly linkUp: boolean;
  /** True while the send queue is above its high-water mark (see {@link writable}). */
  readonly congested: boolean;
  readonly stats: NetBackendStats;
  /** Installs the NIC's handlers (replacing any earlier ones). */
  attach(handlers: NetHandlers): void;
  /**
   * Sends (or queues) one frame; the backend copies what it keeps. Returns false when the frame
   * was dropped. Never blocks.
   */
  send(frame: Uint8Array): boolean;
  /** Resolves once the backend is not {@link congested} (at once if it is not, or is closed). */
  writable(): Promise<void>;
  /** Releases fds and timers; frames sent afterwards are dropped. */
  close(): void;
}

/** Fresh zeroed counters. */
export function newStats(): NetBackendStats {
  return { txFrames: 0, txBytes: 0, txDropped: 0, rxFrames: 0, rxBytes: 0 };
}

/** Largest frame a backend passes on (64 KiB plus headroom, like QEMU's NET_BUFSIZE). */
export const MAX_FRAME = 65536 + 4096;

/** Resolvers of callers waiting for a backend to drain. */
export class WritableWaiters {
  #waiters: (() => void)[] = [];

  /** A promise resolved by the next {@link wake}. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Resolves every waiter. */
  wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const resolve of w) resolve();
  }
}
