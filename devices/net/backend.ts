/**
 * The packet backend interface shared by network device models: a NIC hands complete Ethernet
 * frames (no FCS) to {@link NetBackend.send} and gets received frames through the handlers it
 * attaches. Backends never block: they are driven by the process's epoll EventLoop and queue
 * what the kernel does not take at once.
 *
 * Receive backpressure (like QEMU's `can_receive`): before each read a backend asks the NIC's
 * {@link NetHandlers.canReceive}; while it says no, the backend stops watching its fd (the kernel
 * queues, and eventually drops, what the peer sends) and holds the few frames it had already
 * read. The NIC calls {@link NetBackend.resumeReceive} when it may take frames again.
 *
 * @module
 */

/** What a NIC model listens to. */
export interface NetHandlers {
  /** A frame arrived (without FCS). The array belongs to the receiver. */
  receive(frame: Uint8Array): void;
  /** The carrier changed (e.g. a stream peer connected or went away). */
  linkChanged(up: boolean): void;
  /**
   * Whether the NIC can take a frame now (default: always). While false, the backend delivers
   * nothing and reads nothing until {@link NetBackend.resumeReceive}. A NIC that cannot store
   * frames anyway (receiver off) should say true and drop them, so the peer is not held up.
   */
  canReceive?(): boolean;
}

/** Counters every backend keeps. */
export interface NetBackendStats {
  txFrames: number;
  txBytes: number;
  /** Frames dropped on send: no peer, queue full, or a write error. */
  txDropped: number;
  rxFrames: number;
  rxBytes: number;
  /** Times reading stopped because the NIC could not receive. */
  rxPauses: number;
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
  /** True while reading is paused because the NIC could not receive. */
  readonly receivePaused: boolean;
  /** Installs the NIC's handlers (replacing any earlier ones). */
  attach(handlers: NetHandlers): void;
  /**
   * Copies of the frames read from the wire that the NIC has not taken yet (held while it could
   * not receive). A migrating NIC saves them with its state: they are on their way to it.
   */
  heldCopies(): Uint8Array[];
  /**
   * Replaces the held frames with `frames` (a restored NIC's): they are handed to the NIC, in
   * order and before anything read later, once it can receive.
   */
  holdFrames(frames: readonly Uint8Array[]): void;
  /**
   * The NIC may be able to receive again: a paused backend asks {@link NetHandlers.canReceive}
   * again, hands over the frames it holds and reads on. Cheap when not paused; call it freely.
   */
  resumeReceive(): void;
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
  return { txFrames: 0, txBytes: 0, txDropped: 0, rxFrames: 0, rxBytes: 0, rxPauses: 0 };
}

/** Largest frame a backend passes on (64 KiB plus headroom, like QEMU's NET_BUFSIZE). */
export const MAX_FRAME = 65536 + 4096;

/**
 * What every backend shares: the counters, closing once (and what closes with it), and the
 * receive side: the NIC's handlers, the pause state and the frames read but not yet taken. A
 * backend asks {@link mayRead} before each read and hands every frame to {@link deliver};
 * {@link pauseReading}/{@link resumeReading} stop and restart its reading (fd watching).
 */
export abstract class NetBackendBase implements NetBackend {
  abstract readonly kind: string;
  abstract readonly linkUp: boolean;
  abstract readonly congested: boolean;
  readonly stats: NetBackendStats = newStats();
  #handlers: NetHandlers | undefined;
  #held: Uint8Array[] = [];
  #paused = false;
  #resuming = false;
  #closed = false;
  readonly #onClose: (() => void)[] = [];

  abstract send(frame: Uint8Array): boolean;
  abstract writable(): Promise<void>;
  /** Releases the backend's fds and timers (called once, by {@link close}). */
  protected abstract shutdown(): void;
  /** Stops reading (the NIC cannot take frames). */
  protected pauseReading(): void {}
  /** Reads again. */
  protected resumeReading(): void {}

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  get receivePaused(): boolean {
    return this.#paused;
  }

  /** Frames read but not yet taken by the NIC. */
  get heldFrames(): number {
    return this.#held.length;
  }

  attach(handlers: NetHandlers): void {
    this.#handlers = handlers;
    this.resumeReceive();
  }

  /** Hands over held frames while the NIC takes them; reading resumes once all are taken. */
  resumeReceive(): void {
    if (this.#closed || !this.#paused || this.#resuming) return;
    this.#resuming = true;
    try {
      while (this.#held.length) {
        if (!this.#accepts()) return;
        this.handOver(this.#held.shift()!);
      }
      if (!this.#accepts()) return;
      this.#paused = false;
      this.resumeReading();
    } finally {
      this.#resuming = false;
    }
  }

  heldCopies(): Uint8Array[] {
    return this.#held.map((f) => f.slice());
  }

  holdFrames(frames: readonly Uint8Array[]): void {
    this.#held = frames.map((f) => f.slice());
    if (this.#held.length) this.#pause();
  }

  /** Closes the backend once; then runs what was to close with it ({@link onClose}). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.shutdown();
    for (const fn of this.#onClose.splice(0)) fn();
  }

  /** Runs `fn` when the backend closes (e.g. stopping the loop it was opened on). */
  onClose(fn: () => void): void {
    this.#onClose.push(fn);
  }

  /** The NIC's handlers, if attached. */
  protected get handlers(): NetHandlers | undefined {
    return this.#handlers;
  }

  /** May the backend read a frame now? If not, pauses (once) and returns false. */
  protected mayRead(): boolean {
    if (this.#paused) return false;
    if (this.#held.length === 0 && this.#accepts()) return true;
    this.#pause();
    return false;
  }

  /** A frame that was read: given to the NIC, or held (pausing) while it cannot take it. */
  protected deliver(frame: Uint8Array): void {
    if (this.#paused || this.#held.length || !this.#accepts()) {
      this.#held.push(frame);
      this.#pause();
      return;
    }
    this.handOver(frame);
  }

  /** Gives a frame to the NIC, counted, whether it can take it or not. */
  protected handOver(frame: Uint8Array): void {
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.length;
    this.#handlers?.receive(frame);
  }

  /** Forgets held frames and the pause (the connection they came from is gone). */
  protected forgetHeld(): void {
    this.#held = [];
    this.#paused = false;
  }

  /** Counts a send of `length` bytes that went out (`ok`) or was dropped; returns `ok`. */
  protected countSend(ok: boolean, length: number): boolean {
    if (ok) {
      this.stats.txFrames++;
      this.stats.txBytes += length;
    } else {
      this.stats.txDropped++;
    }
    return ok;
  }

  #accepts(): boolean {
    return this.#handlers?.canReceive?.() ?? true;
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.stats.rxPauses++;
    this.pauseReading();
  }
}
