/**
 * In-memory backends for tests: a pair of cross-connected ends (what one sends, the other
 * receives, asynchronously like a wire) with controllable carrier and congestion. While the
 * receiving NIC cannot take frames, they wait on the wire (unbounded) unless the end is made
 * unpausable, which models a source that cannot be held back.
 *
 * @module
 */
import { NetBackendBase } from "./backend.ts";
import { WaitQueue } from "../../sys/waiters.ts";

/** One end of an in-memory cable. */
export class MemoryBackend extends NetBackendBase {
  readonly kind = "memory";
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
  #link = true;
  #congested = false;
  readonly #waiters = new WaitQueue();

  get linkUp(): boolean {
    return this.#link && !this.closed;
  }

  get congested(): boolean {
    return this.#congested && !this.closed;
  }

  send(frame: Uint8Array): boolean {
    if (!this.countSend(this.linkUp, frame.length)) return false;
    const copy = frame.slice();
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
    if (this.closed) return;
    if (this.pausable) this.deliver(frame.slice());
    else this.handOver(frame.slice());
  }

  /** Sets the carrier and tells the NIC. */
  setLink(up: boolean): void {
    if (this.#link === up) return;
    this.#link = up;
    this.handlers?.linkChanged(up);
  }

  /** Simulates a full send queue (true) or its draining (false). */
  setCongested(on: boolean): void {
    this.#congested = on;
    if (!on) this.#waiters.wakeAll();
  }

  protected shutdown(): void {
    this.forgetHeld();
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
