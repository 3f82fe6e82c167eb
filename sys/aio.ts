/**
 * Asynchronous file I/O for the serving thread, completions delivered by the event loop:
 *
 * - "io_uring" (sys/io_uring.ts): submissions go to the kernel in one `io_uring_enter` per loop
 *   round (the loop's beforeWait hook), completions are signalled on an eventfd in the loop.
 * - "threads": where io_uring is refused (old kernel, seccomp, io_uring_disabled), a few Worker
 *   threads run the blocking calls (preadv/pwritev/fdatasync/fallocate) and signal an eventfd.
 *
 * Either way nothing blocks the loop and any number of operations overlap at the file. Each
 * operation holds a slot (its tag) until its callback ran; the slot keeps the data buffers and
 * the iovec array referenced (the kernel, or an I/O thread, reads them by address) and operations
 * beyond the slots wait in order.
 *
 * @module
 */
import { addressOf, C, IOVEC_SIZE } from "./layout.ts";
import { IO_THREAD_SYMBOLS } from "./ffi.ts";
import { createEventfd, drainEventfd, type EventLoop } from "./event_loop.ts";
import { FSYNC_DATASYNC, IoUring, UringOp } from "./io_uring.ts";
import { closeFd } from "./ffi.ts";

/** Which engine runs the I/O. */
export type AioKind = "io_uring" | "threads";

/** Called once per operation with its result: bytes moved (or 0), or -errno. */
export type AioDone = (res: number) => void;

/** Most iovecs in one operation (Linux IOV_MAX). */
export const AIO_MAX_SEGMENTS = 1024;

/** An asynchronous I/O engine. */
export interface Aio {
  readonly kind: AioKind;
  /** Operations submitted and not yet completed. */
  readonly inFlight: number;
  /** preadv into `segs` (kept referenced until `done`); offset -1: at the file position. */
  readv(fd: number, segs: readonly Uint8Array[], offset: bigint, done: AioDone): void;
  /** pwritev of `segs` (kept referenced until `done`); offset -1: at the file position. */
  writev(fd: number, segs: readonly Uint8Array[], offset: bigint, done: AioDone): void;
  /** fdatasync (datasync) or fsync. */
  fsync(fd: number, datasync: boolean, done: AioDone): void;
  /** fallocate(fd, mode, offset, len). */
  fallocate(fd: number, mode: number, offset: bigint, len: bigint, done: AioDone): void;
  /** Stops the engine (operations in flight are abandoned: call after they completed). Idempotent. */
  close(): void;
}

interface Job {
  op: number;
  fd: number;
  segs: readonly Uint8Array[] | undefined;
  /** FALLOCATE: length. */
  len: bigint;
  offset: bigint;
  /** FSYNC flags or FALLOCATE mode. */
  flags: number;
  done: AioDone;
}

interface Slot {
  job: Job | undefined;
  iov: Uint8Array;
  iovView: DataView;
}

/** Slots, their iovec arrays and the queue of jobs waiting for one. */
abstract class SlotEngine implements Aio {
  abstract readonly kind: AioKind;
  readonly #slots: Slot[];
  readonly #free: number[];
  readonly #waiting: Job[] = [];
  #inFlight = 0;

  constructor(depth: number) {
    this.#slots = Array.from({ length: depth }, () => {
      const iov = new Uint8Array(IOVEC_SIZE * 8);
      return { job: undefined, iov, iovView: new DataView(iov.buffer) };
    });
    this.#free = this.#slots.map((_, i) => depth - 1 - i);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  readv(fd: number, segs: readonly Uint8Array[], offset: bigint, done: AioDone): void {
    this.#add({ op: UringOp.READV, fd, segs, len: 0n, offset, flags: 0, done });
  }

  writev(fd: number, segs: readonly Uint8Array[], offset: bigint, done: AioDone): void {
    this.#add({ op: UringOp.WRITEV, fd, segs, len: 0n, offset, flags: 0, done });
  }

  fsync(fd: number, datasync: boolean, done: AioDone): void {
    const flags = datasync ? FSYNC_DATASYNC : 0;
    this.#add({ op: UringOp.FSYNC, fd, segs: undefined, len: 0n, offset: 0n, flags, done });
  }

  fallocate(fd: number, mode: number, offset: bigint, len: bigint, done: AioDone): void {
    this.#add({ op: UringOp.FALLOCATE, fd, segs: undefined, len, offset, flags: mode, done });
  }

  #add(job: Job): void {
    if (job.segs && (job.segs.length === 0 || job.segs.length > AIO_MAX_SEGMENTS)) {
      throw new RangeError(`aio: ${job.segs.length} segments (1 to ${AIO_MAX_SEGMENTS})`);
    }
    this.#inFlight++;
    if (this.#waiting.length || !this.#start(job)) this.#waiting.push(job);
  }

  #start(job: Job): boolean {
    const tag = this.#free.pop();
    if (tag === undefined) return false;
    const slot = this.#slots[tag];
    let addr = job.len;
    let count = job.flags;
    if (job.segs) {
      const n = job.segs.length;
      if (slot.iov.length < n * IOVEC_SIZE) {
        slot.iov = new Uint8Array(IOVEC_SIZE * Math.max(n, 2 * slot.iov.length / IOVEC_SIZE));
        slot.iovView = new DataView(slot.iov.buffer);
      }
      for (let i = 0; i < n; i++) {
        const s = job.segs[i];
        slot.iovView.setBigUint64(i * IOVEC_SIZE, s.length ? addressOf(s) : 0n, true);
        slot.iovView.setBigUint64(i * IOVEC_SIZE + 8, BigInt(s.length), true);
      }
      addr = addressOf(slot.iov);
      count = n;
    } else if (job.op === UringOp.FSYNC) {
      addr = 0n;
      count = 0;
    }
    slot.job = job;
    const flags = job.op === UringOp.FSYNC ? job.flags : 0;
    // FALLOCATE: len goes in addr, mode in len (io_uring's encoding, kept for threads too)
    if (!this.issue(tag, { op: job.op, fd: job.fd, addr, len: count, offset: job.offset, flags })) {
      slot.job = undefined;
      this.#free.push(tag);
      return false;
    }
    return true;
  }

  /** Hands one operation to the engine; false when it has no room now. */
  protected abstract issue(
    tag: number,
    sqe: { op: number; fd: number; addr: bigint; len: number; offset: bigint; flags: number },
  ): boolean;

  /** An operation finished: frees its slot, starts a waiting one, calls back. */
  protected complete(tag: number, res: number): void {
    const slot = this.#slots[tag];
    const job = slot.job;
    if (!job) return;
    slot.job = undefined;
    this.#free.push(tag);
    this.#inFlight--;
    while (this.#waiting.length && this.#start(this.#waiting[0])) this.#waiting.shift();
    job.done(res);
  }

  /** Tags of operations in flight. */
  protected busyTags(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.#slots.length; i++) if (this.#slots[i].job) out.push(i);
    return out;
  }

  /** Set by close() (idempotent). */
  protected closed = false;

  abstract close(): void;
}

class UringAio extends SlotEngine {
  readonly kind = "io_uring";
  readonly #ring: IoUring;
  readonly #efd: number;
  readonly #loop: EventLoop;
  readonly #unhook: () => void;
  #pumpQueued = false;

  constructor(loop: EventLoop, ring: IoUring) {
    super(ring.entries);
    this.#loop = loop;
    this.#ring = ring;
    this.#efd = createEventfd();
    try {
      ring.registerEventfd(this.#efd);
    } catch (e) {
      closeFd(this.#efd);
      throw e;
    }
    loop.add(this.#efd, C.EPOLLIN, () => {
      drainEventfd(this.#efd);
      this.#pump();
    });
    this.#unhook = loop.beforeWait(() => this.#pump());
  }

  protected issue(
    tag: number,
    s: { op: number; fd: number; addr: bigint; len: number; offset: bigint; flags: number },
  ): boolean {
    if (!this.#ring.prepare({ ...s, tag })) return false;
    // A lone operation is submitted once the code running now (and what it queued) is done: if
    // the kernel completes it at once (a page-cache read) it completes in this same turn of the
    // loop, without another wake-up. With others in flight (a batch), the loop's beforeWait
    // hook submits them all with one io_uring_enter.
    if (!this.#pumpQueued && this.inFlight <= 1) {
      this.#pumpQueued = true;
      queueMicrotask(() => {
        this.#pumpQueued = false;
        this.#pump();
      });
    }
    return true;
  }

  /** Submits what was prepared, reaps what completed; true when it did either. */
  #pump(): boolean {
    const submitted = this.#ring.submit();
    // Completions of page-cache reads are often there at once: reaped now. Their signals are
    // taken off the eventfd first (a completion after that signals again), so they do not
    // wake the loop for nothing.
    if (submitted > 0) drainEventfd(this.#efd);
    const reaped = this.#ring.reap((tag, res) => this.complete(tag, res));
    return submitted > 0 || reaped > 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#unhook();
    this.#loop.remove(this.#efd);
    this.#ring.close();
    closeFd(this.#efd);
  }
}

/** Words of the control array shared with the I/O threads. */
const CTL = { HEAD: 0, TAIL: 1, STOP: 2, QUEUE: 4 } as const;
/** BigInt64 fields of one job. */
const JOB_FIELDS = 8;
const STATE_DONE = 2;

/**
 * The code of one I/O thread, run from a data: URL (so a bundled vfud carries it): it may use
 * nothing from outside its own body. It takes jobs from the shared queue, runs the blocking
 * call, stores the result and signals the eventfd.
 */
function ioThreadMain(): void {
  // deno-lint-ignore no-explicit-any
  const scope = globalThis as any;
  scope.onmessage = (ev: MessageEvent) => {
    const { symbols, ctl, jobs, state, efd, depth } = ev.data;
    // (a type-only reference: erased from the code that runs on the thread)
    const libc = Deno.dlopen("libc.so.6", symbols as typeof IO_THREAD_SYMBOLS).symbols;
    const errnoView = new Int32Array(
      Deno.UnsafePointerView.getArrayBuffer(libc.__errno_location()!, 4),
    );
    const c = new Int32Array(ctl);
    const j = new BigInt64Array(jobs);
    const st = new Int32Array(state);
    const one = new Uint8Array(8);
    one[0] = 1;
    const EINTR = 4;
    for (;;) {
      if (Atomics.load(c, 2) !== 0) break;
      const h = Atomics.load(c, 0);
      const t = Atomics.load(c, 1);
      if (h === t) {
        Atomics.wait(c, 1, t);
        continue;
      }
      if (Atomics.compareExchange(c, 0, h, (h + 1) | 0) !== h) continue;
      const slot = Atomics.load(c, 4 + (h & (depth - 1)));
      const b = slot * 8;
      const op = Number(j[b]);
      const fd = Number(j[b + 1]);
      const addr = j[b + 2];
      const len = Number(j[b + 3]);
      const off = j[b + 4];
      const flags = Number(j[b + 5]);
      let r = -22;
      for (;;) {
        const iov = Deno.UnsafePointer.create(addr as bigint);
        // offset -1: the file position (and the only way for pipes and sockets), as io_uring
        if (op === 1) {
          r = Number(off === -1n ? libc.readv(fd, iov, len) : libc.preadv(fd, iov, len, off));
        } else if (op === 2) {
          r = Number(off === -1n ? libc.writev(fd, iov, len) : libc.pwritev(fd, iov, len, off));
        } else if (op === 3) r = flags & 1 ? libc.fdatasync(fd) : libc.fsync(fd);
        else if (op === 17) r = libc.fallocate(fd, len, off, addr);
        else break;
        if (r < 0) r = -errnoView[0];
        if (r !== -EINTR) break;
      }
      j[b + 6] = BigInt(r);
      Atomics.store(st, slot, 2);
      libc.write(efd, one, 8n);
    }
    scope.close();
  };
}

class ThreadAio extends SlotEngine {
  readonly kind = "threads";
  readonly #loop: EventLoop;
  readonly #efd: number;
  readonly #depth: number;
  readonly #ctl: Int32Array;
  readonly #jobs: BigInt64Array;
  readonly #state: Int32Array;
  readonly #threads: Worker[] = [];

  constructor(loop: EventLoop, depth: number, threads: number) {
    // a power of two: queue positions wrap with the 32-bit counters
    depth = 2 ** Math.ceil(Math.log2(Math.max(2, depth)));
    super(depth);
    this.#loop = loop;
    this.#depth = depth;
    this.#ctl = new Int32Array(new SharedArrayBuffer(4 * (CTL.QUEUE + depth)));
    this.#jobs = new BigInt64Array(new SharedArrayBuffer(8 * JOB_FIELDS * depth));
    this.#state = new Int32Array(new SharedArrayBuffer(4 * depth));
    this.#efd = createEventfd();
    loop.add(this.#efd, C.EPOLLIN, () => {
      drainEventfd(this.#efd);
      for (const tag of this.busyTags()) {
        if (Atomics.load(this.#state, tag) !== STATE_DONE) continue;
        Atomics.store(this.#state, tag, 0);
        this.complete(tag, Number(this.#jobs[tag * JOB_FIELDS + 6]));
      }
    });
    const src = `(${ioThreadMain.toString()})();`;
    const url = `data:application/javascript,${encodeURIComponent(src)}`;
    for (let i = 0; i < threads; i++) {
      const w = new Worker(url, { type: "module", name: `vfud-io-${i}` });
      w.postMessage({
        symbols: IO_THREAD_SYMBOLS,
        ctl: this.#ctl.buffer,
        jobs: this.#jobs.buffer,
        state: this.#state.buffer,
        efd: this.#efd,
        depth,
      });
      this.#threads.push(w);
    }
  }

  protected issue(
    tag: number,
    s: { op: number; fd: number; addr: bigint; len: number; offset: bigint; flags: number },
  ): boolean {
    const b = tag * JOB_FIELDS;
    const j = this.#jobs;
    j[b] = BigInt(s.op);
    j[b + 1] = BigInt(s.fd);
    j[b + 2] = s.addr;
    j[b + 3] = BigInt(s.len);
    j[b + 4] = s.offset;
    j[b + 5] = BigInt(s.flags);
    Atomics.store(this.#state, tag, 1);
    const t = Atomics.load(this.#ctl, CTL.TAIL);
    Atomics.store(this.#ctl, CTL.QUEUE + (t & (this.#depth - 1)), tag);
    Atomics.store(this.#ctl, CTL.TAIL, (t + 1) | 0);
    Atomics.notify(this.#ctl, CTL.TAIL, 1);
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.#ctl, CTL.STOP, 1);
    Atomics.add(this.#ctl, CTL.TAIL, 0);
    Atomics.notify(this.#ctl, CTL.TAIL);
    for (const w of this.#threads) w.terminate();
    this.#loop.remove(this.#efd);
    closeFd(this.#efd);
  }
}

/** Options of {@link openAio}. */
export interface AioOptions {
  /** "io_uring", "threads", or "auto": io_uring unless the kernel refuses it. Default auto. */
  kind?: AioKind | "auto";
  /** Operations in flight at once (more wait in order). Default 256. */
  depth?: number;
  /** I/O threads of the "threads" engine. Default 4. */
  threads?: number;
  /** Told why io_uring could not be used when "auto" fell back to threads. */
  onFallback?: (why: string) => void;
}

/** Opens an engine whose completions are delivered by `loop`. */
export function openAio(loop: EventLoop, opts: AioOptions = {}): Aio {
  const kind = opts.kind ?? "auto";
  const depth = opts.depth ?? 256;
  if (kind !== "threads") {
    try {
      return new UringAio(loop, new IoUring(depth));
    } catch (e) {
      if (kind === "io_uring") throw e;
      opts.onFallback?.((e as Error).message);
    }
  }
  return new ThreadAio(loop, depth, opts.threads ?? 4);
}
