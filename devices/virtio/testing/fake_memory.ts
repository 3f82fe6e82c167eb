/**
 * Test doubles: guest memory over a plain ArrayBuffer and a device context that records
 * interrupts.
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import {
  GuestFault,
  type GuestMapping,
  type GuestMemory,
  type GuestRange,
  transferEach,
  transferInChunks,
} from "../../../dma/guest_memory.ts";
import type { DeviceContext } from "../../device.ts";
import { Errno } from "../../../sys/errno.ts";

/** Options of {@link FakeGuestMemory}. */
export interface FakeMemoryOptions {
  /** RAM size in bytes, starting at guest address 0. */
  size: number;
  /** Ranges that are not DMA-mapped: any access touching them throws GuestFault (EFAULT). */
  holes?: { addr: number; len: number }[];
  /** Multi-segment mode: mappings split at multiples of this many bytes. */
  segmentSize?: number;
  /** Bounce mode: mappings are copies, written back on release when writable. */
  bounce?: boolean;
  /** transfer() moves at most this many bytes per chunk (message-based memory); default all. */
  chunkSize?: number;
  /**
   * Offer readNow/writeNow (mmapped-like RAM: ring accesses done at once). Default true unless
   * `bounce` (message-based memory has no fast path).
   */
  fastPath?: boolean;
}

/** Guest memory over an ArrayBuffer with optional holes, segmentation and bounce buffers. */
export class FakeGuestMemory implements GuestMemory {
  /** Guest RAM. */
  readonly ram: Uint8Array;
  readonly #opts: FakeMemoryOptions;
  /** Mappings not yet released. */
  live = 0;
  /** Number of map() calls. */
  maps = 0;
  /** Called after each write() (tests use it to race the device). */
  onWrite?: (addr: bigint, src: Uint8Array) => void;

  constructor(opts: FakeMemoryOptions) {
    this.ram = new Uint8Array(opts.size);
    this.#opts = opts;
  }

  /** Adds an unmapped hole. */
  addHole(addr: number, len: number): void {
    (this.#opts.holes ??= []).push({ addr, len });
  }

  #check(addr: bigint, length: number): number {
    const end = addr + BigInt(length);
    const bad = end > BigInt(this.ram.length) ||
      (this.#opts.holes ?? []).some((h) =>
        addr < BigInt(h.addr + h.len) && end > BigInt(h.addr) && length > 0
      );
    if (bad) throw new GuestFault(Errno.EFAULT, addr, length, "not mapped");
    return Number(addr);
  }

  #split(start: number, length: number): Uint8Array[] {
    const seg = this.#opts.segmentSize;
    const out: Uint8Array[] = [];
    let at = start;
    const end = start + length;
    while (at < end) {
      const next = seg ? Math.min(end, (Math.floor(at / seg) + 1) * seg) : end;
      out.push(this.ram.subarray(at, next));
      at = next;
    }
    return out;
  }

  async map(addr: bigint, length: number, writable: boolean): Promise<GuestMapping> {
    await Promise.resolve();
    const start = this.#check(addr, length);
    const views = this.#split(start, length);
    const segments = this.#opts.bounce ? views.map((v) => v.slice()) : views;
    this.maps++;
    this.live++;
    let released = false;
    return {
      segments,
      length,
      release: () => {
        if (released) throw new Error("double release");
        released = true;
        this.live--;
        if (this.#opts.bounce && writable) segments.forEach((s, i) => views[i].set(s));
        return Promise.resolve();
      },
    };
  }

  transferv(
    ranges: readonly GuestRange[],
    writable: boolean,
    fn: (segments: readonly Uint8Array[], offset: number) => Promise<void> | void,
  ): Promise<void> {
    return transferEach(this, ranges, writable, fn);
  }

  async transfer(
    addr: bigint,
    length: number,
    writable: boolean,
    fn: (segments: readonly Uint8Array[], offset: number) => Promise<void> | void,
  ): Promise<void> {
    this.#check(addr, length);
    const chunk = this.#opts.chunkSize ?? length;
    await transferInChunks(this, addr, length, chunk, writable, fn);
  }

  /** Whether [addr, +length) can be accessed at once (fast path on, mapped, one segment). */
  #now(addr: bigint, length: number): number | undefined {
    if (!(this.#opts.fastPath ?? !this.#opts.bounce)) return undefined;
    const start = Number(addr);
    const end = start + length;
    if (addr < 0n || end > this.ram.length) return undefined;
    if ((this.#opts.holes ?? []).some((h) => start < h.addr + h.len && end > h.addr)) {
      return undefined;
    }
    const seg = this.#opts.segmentSize;
    if (seg && length > 0 && Math.floor(start / seg) !== Math.floor((end - 1) / seg)) {
      return undefined;
    }
    return start;
  }

  readNow(addr: bigint, dst: Uint8Array): boolean {
    const start = this.#now(addr, dst.length);
    if (start === undefined) return false;
    dst.set(this.ram.subarray(start, start + dst.length));
    return true;
  }

  writeNow(addr: bigint, src: Uint8Array): boolean {
    const start = this.#now(addr, src.length);
    if (start === undefined) return false;
    this.ram.set(src, start);
    this.onWrite?.(addr, src);
    return true;
  }

  async read(addr: bigint, dst: Uint8Array): Promise<void> {
    await Promise.resolve();
    const start = this.#check(addr, dst.length);
    dst.set(this.ram.subarray(start, start + dst.length));
  }

  async write(addr: bigint, src: Uint8Array): Promise<void> {
    await Promise.resolve();
    this.ram.set(src, this.#check(addr, src.length));
    this.onWrite?.(addr, src);
  }
}

/** A device context recording interrupts. */
export class FakeContext implements DeviceContext {
  readonly mem: GuestMemory;
  /** Vectors passed to trigger(), in order. */
  triggers: number[] = [];
  /** Number of lowerIntx() calls. */
  lowered = 0;
  /** What msixEnabled() returns. */
  msix = false;
  /** What busMaster() returns. */
  master = true;
  readonly log: Logger = getLogger(["vfud", "test"]);

  constructor(mem: GuestMemory) {
    this.mem = mem;
  }

  trigger(vector: number): void {
    this.triggers.push(vector);
  }

  lowerIntx(): void {
    this.lowered++;
  }

  /** What afterWrites() returns (a test's pending writes), undefined: all visible. */
  pendingWrites: Promise<void> | undefined;

  afterWrites(): Promise<void> | undefined {
    return this.pendingWrites;
  }

  msixEnabled(): boolean {
    return this.msix;
  }

  busMaster(): boolean {
    return this.master;
  }
}
