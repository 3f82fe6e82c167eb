/**
 * In-memory backends for tests: a pair of cross-connected ends (what one sends, the other
 * receives, asynchronously like a wire) with controllable carrier and congestion. While the
 * receiving NIC cannot take frames, they wait on the wire (unbounded) unless the end is made
 * unpausable, which models a source that cannot be held back.
 *
 * @module
 */
import {
  type NetBackend,
  type NetBackendStats,
  type NetHandlers,
  newStats,
  ReceiveGate,
} from "./backend.ts";
import { WaitQueue } from "../../sys/waiters.ts";

/** One end of an in-memory cable. */
export class MemoryBackend implements NetBackend {
  readonly kind = "memory";
  readonly stats: NetBackendStats = newStats();
  /** Frames sent while no peer is connected (or always, when `record` is set). */
  readonly sent: Uint8Array[] = [];
  /** Keep a copy of every sent frame in {@link sent}, even with a peer. */
  record = false;
  /**
   * Hold frames while the NIC cannot receive (true, the default), or hand them over regardless
   * (false: a source that cannot be paused, so the NIC has to drop).
   */
  pausable = true;
  peer: MemoryBackend | undefined;
  readonly #gate = new ReceiveGate(this.stats, () => {}, () => {});
  #link = true;
  #congested = false;
  #closed = false;
  readonly #waiters = new WaitQueue();

  get linkUp(): boolean {
    return this.#link && !this.#closed;
  }

  get congested(): boolean {
    return this.#congested && !this.#closed;
  }

  get receivePaused(): boolean {
    return this.#gate.paused;
  }

  /** Frames waiting on the wire for the NIC. */
  get heldFrames(): number {
    return this.#gate.held;
  }

  attach(handlers: NetHandlers): void {
    this.#gate.attach(handlers);
  }

  heldCopies(): Uint8Array[] {
    return this.#gate.heldCopies();
  }

  holdFrames(frames: readonly Uint8Array[]): void {
    this.#gate.holdFrames(frames);
  }

  resumeReceive(): void {
    if (!this.#closed) this.#gate.resume();
  }

  send(frame: Uint8Array): boolean {
    if (!this.linkUp) {
      this.stats.txDropped++;
      return false;
    }
    const copy = frame.slice();
    this.stats.txFrames++;
    this.stats.txBytes += copy.length;
    const peer = this.peer;
    if (!peer || this.record) this.sent.push(copy);
    if (peer) queueMicrotask(() => peer.inject(copy));
    return true;
  }

  writable(): Promise<void> {
    return this.congested ? this.#waiters.wait() : Promise.resolve();
  }

  /** Delivers `frame` to the attached NIC as if it came from the wire. */
  inject(frame: Uint8Array): void {
    if (this.#closed) return;
    if (this.pausable) return this.#gate.deliver(frame.slice());
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.length;
    this.#gate.handlers?.receive(frame.slice());
  }

  /** Sets the carrier and tells the NIC. */
  setLink(up: boolean): void {
    if (this.#link === up) return;
    this.#link = up;
    this.#gate.handlers?.linkChanged(up);
  }

  /** Simulates a full send queue (true) or its draining (false). */
  setCongested(on: boolean): void {
    this.#congested = on;
    if (!on) this.#waiters.wakeAll();
  }

  close(): void {
    this.#closed = true;
    this.#gate.reset();
    this.#waiters.wakeAll();
  }
}

/** Two cross-connected ends. */
export function memoryPair(): [MemoryBackend, MemoryBackend] {
  const a = new MemoryBackend();
  const b = new MemoryBackend();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
