/**
 * The device side of a split virtqueue (virtio 1.x §2.7): reads the available ring, walks
 * descriptor chains, writes used elements and the used index, and decides whether the driver
 * wants an interrupt (§2.7.7, §2.7.10). Every access goes through {@link GuestMemory}; all guest
 * values are validated.
 *
 * @module
 */
import type { GuestMemory } from "../../dma/guest_memory.ts";
import { AVAIL_F_NO_INTERRUPT } from "../../spec/virtio.ts";
import { DESC_SIZE, type DescChain, readChain } from "./descriptors.ts";
import { VirtqueueError } from "./errors.ts";

/** Guest addresses and size of a split virtqueue as configured by the driver (§4.1.4.3). */
export interface QueueConfig {
  readonly size: number;
  /** Descriptor table. */
  readonly desc: bigint;
  /** Driver area: the available ring. */
  readonly driver: bigint;
  /** Device area: the used ring. */
  readonly device: bigint;
}

/** One used-ring element: the chain's head index and the bytes the device wrote. */
export interface UsedElem {
  readonly id: number;
  readonly len: number;
}

const USED_ELEM_SIZE = 8;

/** The device-side indices of a split virtqueue: its state besides the driver's config. */
export type RingIndices = {
  /** Next avail-ring index the device consumes. */
  lastAvail: number;
  /** Used index published to the driver. */
  usedIdx: number;
  /** Used index when the driver was last considered for an interrupt (EVENT_IDX). */
  signalled: number;
  /** Whether {@link signalled} is meaningful yet. */
  signalledValid: boolean;
};

/** `vring_need_event` (§2.7.10): did the index move past the driver's event index? */
export function needEvent(event: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

/** Ring state of one enabled split virtqueue. */
export class SplitQueue {
  readonly #mem: GuestMemory;
  readonly #cfg: QueueConfig;
  readonly #eventIdx: boolean;
  #lastAvail = 0;
  #usedIdx = 0;
  #signalled = 0;
  #signalledValid = false;
  /** Scratch of the fast paths (never held across a wait). */
  readonly #b2 = new Uint8Array(2);
  readonly #ring: Uint8Array;
  readonly #used: Uint8Array;
  readonly #usedView: DataView;
  /**
   * Descriptor table fetched for the heads of the last pop: the driver wrote their descriptors
   * before publishing them (read after the avail idx), so it holds for them until the next pop.
   */
  #table: Promise<Uint8Array> | undefined;

  /**
   * `eventIdx` says whether VIRTIO_F_EVENT_IDX was negotiated; `indices` continue a saved queue
   * (default: a fresh one).
   */
  constructor(mem: GuestMemory, cfg: QueueConfig, eventIdx: boolean, indices?: RingIndices) {
    this.#mem = mem;
    this.#cfg = cfg;
    this.#eventIdx = eventIdx;
    this.#ring = new Uint8Array(2 * cfg.size);
    this.#used = new Uint8Array(USED_ELEM_SIZE * cfg.size);
    this.#usedView = new DataView(this.#used.buffer);
    if (indices) {
      this.#lastAvail = indices.lastAvail;
      this.#usedIdx = indices.usedIdx;
      this.#signalled = indices.signalled;
      this.#signalledValid = indices.signalledValid;
    }
  }

  /** The device-side indices (a queue built with them continues where this one is). */
  indices(): RingIndices {
    return {
      lastAvail: this.#lastAvail,
      usedIdx: this.#usedIdx,
      signalled: this.#signalled,
      signalledValid: this.#signalledValid,
    };
  }

  /** Queue size. */
  get size(): number {
    return this.#cfg.size;
  }

  /** Next available-ring index the device will consume. */
  get lastAvail(): number {
    return this.#lastAvail;
  }

  /** Current used index as published to the driver. */
  get usedIdx(): number {
    return this.#usedIdx;
  }

  // The ring accesses below are done at once through GuestMemory.readNow/writeNow when the
  // rings are in mmapped guest RAM (no promise, no allocation: the per-request fast path), and
  // through read/write otherwise (message-based DMA, or a map the fast path cannot take).

  #readU16(addr: bigint): number | Promise<number> {
    const b = this.#b2;
    if (this.#mem.readNow?.(addr, b)) return b[0] | (b[1] << 8);
    return this.#readU16Slow(addr);
  }

  async #readU16Slow(addr: bigint): Promise<number> {
    const b = new Uint8Array(2);
    await this.#mem.read(addr, b);
    return b[0] | (b[1] << 8);
  }

  #writeU16(addr: bigint, value: number): void | Promise<void> {
    const b = this.#b2;
    b[0] = value & 0xff;
    b[1] = (value >> 8) & 0xff;
    if (this.#mem.writeNow?.(addr, b)) return;
    return this.#mem.write(addr, new Uint8Array([value & 0xff, (value >> 8) & 0xff]));
  }

  /** The driver's avail idx (§2.7.6). */
  availIdx(): number | Promise<number> {
    return this.#readU16(this.#cfg.driver + 2n);
  }

  /**
   * Takes up to `max` heads the driver made available since the last call (§2.7.6). Throws
   * {@link VirtqueueError} if the avail idx moved by more than the queue size.
   */
  popAvailable(max: number = this.#cfg.size): number[] | Promise<number[]> {
    this.#table = undefined;
    const size = this.#cfg.size;
    const b = this.#b2;
    if (!this.#mem.readNow?.(this.#cfg.driver + 2n, b)) return this.#popSlow(max);
    const idx = b[0] | (b[1] << 8);
    const avail = (idx - this.#lastAvail) & 0xffff;
    if (avail > size) throw new VirtqueueError(`avail idx jumped by ${avail} (size ${size})`);
    const count = Math.min(avail, max);
    if (count === 0) return [];
    // the entries [lastAvail, lastAvail+count) of the ring, in at most two pieces (wrap)
    const first = this.#lastAvail % size;
    const n1 = Math.min(count, size - first);
    const ring = this.#ring;
    const ringAt = this.#cfg.driver + 4n;
    if (
      !this.#mem.readNow(ringAt + BigInt(2 * first), ring.subarray(0, 2 * n1)) ||
      (count > n1 && !this.#mem.readNow(ringAt, ring.subarray(2 * n1, 2 * count)))
    ) {
      return this.#popSlow(max);
    }
    const heads = new Array<number>(count);
    for (let i = 0; i < count; i++) heads[i] = ring[2 * i] | (ring[2 * i + 1] << 8);
    this.#lastAvail = (this.#lastAvail + count) & 0xffff;
    return heads;
  }

  async #popSlow(max: number): Promise<number[]> {
    const size = this.#cfg.size;
    // idx and the whole ring in one read: one DMA round trip instead of two when guest memory
    // is message-based. Ascending copy order reads idx before the entries it publishes.
    const bytes = new Uint8Array(2 + 2 * size);
    await this.#mem.read(this.#cfg.driver + 2n, bytes);
    const idx = bytes[0] | (bytes[1] << 8);
    const avail = (idx - this.#lastAvail) & 0xffff;
    if (avail > size) throw new VirtqueueError(`avail idx jumped by ${avail} (size ${size})`);
    const count = Math.min(avail, max);
    const heads: number[] = [];
    for (let i = 0; i < count; i++) {
      const at = 2 + 2 * ((this.#lastAvail + i) % size);
      heads.push(bytes[at] | (bytes[at + 1] << 8));
    }
    this.#lastAvail = (this.#lastAvail + count) & 0xffff;
    return heads;
  }

  /**
   * Reads and validates the descriptor chain starting at `head`. Where descriptors cannot be
   * read at once (message-based guest memory), the whole descriptor table is fetched once per
   * batch of heads and shared by their chains.
   */
  readChain(head: number): DescChain | Promise<DescChain> {
    return readChain(this.#mem, this.#cfg.desc, this.#cfg.size, head, this.#wholeTable);
  }

  /** The ring's descriptor table as of the last pop (fetched on first use). */
  readonly #wholeTable = (): Promise<Uint8Array> => {
    if (!this.#table) {
      const bytes = new Uint8Array(DESC_SIZE * this.#cfg.size);
      this.#table = this.#mem.read(this.#cfg.desc, bytes).then(() => bytes);
      this.#table.catch(() => {}); // each chain read reports it
    }
    return this.#table;
  };

  /** Writes `elems` to the used ring, then publishes them by updating used idx (§2.7.8). */
  pushUsed(elems: readonly UsedElem[]): void | Promise<void> {
    const size = this.#cfg.size;
    let done = 0;
    while (done < elems.length) {
      const pos = (this.#usedIdx + done) % size;
      const run = Math.min(elems.length - done, size - pos);
      const bytes = this.#used.subarray(0, run * USED_ELEM_SIZE);
      const view = this.#usedView;
      for (let i = 0; i < run; i++) {
        view.setUint32(i * USED_ELEM_SIZE, elems[done + i].id, true);
        view.setUint32(i * USED_ELEM_SIZE + 4, elems[done + i].len, true);
      }
      const at = this.#cfg.device + 4n + BigInt(pos * USED_ELEM_SIZE);
      if (!this.#mem.writeNow?.(at, bytes)) return this.#pushSlow(elems, done);
      done += run;
    }
    // the elements are stored before the index that publishes them (x86 keeps store order)
    this.#usedIdx = (this.#usedIdx + elems.length) & 0xffff;
    return this.#writeU16(this.#cfg.device + 2n, this.#usedIdx);
  }

  async #pushSlow(elems: readonly UsedElem[], done: number): Promise<void> {
    const size = this.#cfg.size;
    while (done < elems.length) {
      const pos = (this.#usedIdx + done) % size;
      const run = Math.min(elems.length - done, size - pos);
      const bytes = new Uint8Array(run * USED_ELEM_SIZE);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < run; i++) {
        view.setUint32(i * USED_ELEM_SIZE, elems[done + i].id, true);
        view.setUint32(i * USED_ELEM_SIZE + 4, elems[done + i].len, true);
      }
      await this.#mem.write(this.#cfg.device + 4n + BigInt(pos * USED_ELEM_SIZE), bytes);
      done += run;
    }
    this.#usedIdx = (this.#usedIdx + elems.length) & 0xffff;
    await this.#writeU16(this.#cfg.device + 2n, this.#usedIdx);
  }

  /**
   * Whether the driver wants an interrupt for the used entries published since the last call:
   * used_event with EVENT_IDX (§2.7.10), else the avail ring's NO_INTERRUPT flag (§2.7.7).
   */
  shouldNotify(): boolean | Promise<boolean> {
    if (!this.#eventIdx) {
      const flags = this.#readU16(this.#cfg.driver);
      if (flags instanceof Promise) return flags.then((f) => (f & AVAIL_F_NO_INTERRUPT) === 0);
      return (flags & AVAIL_F_NO_INTERRUPT) === 0;
    }
    const event = this.#readU16(this.#cfg.driver + 4n + BigInt(this.#cfg.size * 2));
    if (event instanceof Promise) return event.then((e) => this.#passedEvent(e));
    return this.#passedEvent(event);
  }

  #passedEvent(event: number): boolean {
    const old = this.#signalled;
    const valid = this.#signalledValid;
    this.#signalled = this.#usedIdx;
    this.#signalledValid = true;
    return !valid || needEvent(event, this.#usedIdx, old);
  }

  /** With EVENT_IDX: asks for a kick once the driver passes the consumed index (§2.7.10). */
  setAvailEvent(): void | Promise<void> {
    if (!this.#eventIdx) return;
    const at = this.#cfg.device + 4n + BigInt(this.#cfg.size * USED_ELEM_SIZE);
    return this.#writeU16(at, this.#lastAvail);
  }
}
