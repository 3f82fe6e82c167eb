/**
 * io_uring (Linux 5.1+) driven from TypeScript: the submission and completion rings are mmapped
 * once and read and written through views; `io_uring_enter` submits, an eventfd registered with
 * the ring (IORING_REGISTER_EVENTFD) tells the event loop that completions arrived. Layouts follow
 * include/uapi/linux/io_uring.h (x86_64).
 *
 * Only what a block backend needs: READV, WRITEV, FSYNC (with DATASYNC) and FALLOCATE, each
 * identified by a caller-chosen 32-bit tag. The kernel copies iovec arrays at submission
 * (IORING_FEAT_SUBMIT_STABLE, required): only the data buffers must stay valid until the
 * completion.
 *
 * @module
 */
import { closeFd, errno, libc, SysError } from "./ffi.ts";
import { Errno } from "./errno.ts";
import { C, fillIovec, IOVEC_SIZE } from "./layout.ts";

const SYS_IO_URING_SETUP = 425n;
const SYS_IO_URING_ENTER = 426n;
const SYS_IO_URING_REGISTER = 427n;

const PARAMS_SIZE = 120;
const SQE_SIZE = 64;
const CQE_SIZE = 16;
const OFF_SQ_RING = 0n;
const OFF_SQES = 0x10000000n;
const SETUP_CLAMP = 1 << 4;
const FEAT_SINGLE_MMAP = 1 << 0;
const FEAT_SUBMIT_STABLE = 1 << 2;
const REGISTER_BUFFERS = 0;
const REGISTER_FILES = 2;
const REGISTER_EVENTFD = 4;
const MAP_POPULATE = 0x8000;

/** Opcodes used here (enum io_uring_op). */
export const UringOp = {
  NOP: 0,
  READV: 1,
  WRITEV: 2,
  FSYNC: 3,
  /** Into a registered buffer: `addr` inside it, `len` bytes, `bufIndex` names it. */
  READ_FIXED: 4,
  FALLOCATE: 17,
} as const;

/** IORING_FSYNC_DATASYNC. */
export const FSYNC_DATASYNC = 1;

/** One submission. */
export interface UringSqe {
  op: number;
  fd: number;
  /** iovec array address (READV/WRITEV), or the length (FALLOCATE). */
  addr: bigint;
  /** iovec count (READV/WRITEV), or the mode (FALLOCATE). */
  len: number;
  /** File offset. */
  offset: bigint;
  /** rw_flags / fsync_flags. */
  flags: number;
  /** Returned with the completion. */
  tag: number;
  /** IOSQE_* flags; {@link SQE_FIXED_FILE}: `fd` is an index into the registered files. */
  sqeFlags?: number;
  /** READ_FIXED: index of the registered buffer. */
  bufIndex?: number;
}

/** IOSQE_FIXED_FILE: the sqe's fd is an index into the files given to registerFiles(). */
export const SQE_FIXED_FILE = 1;

function mapRing(fd: number, size: number, offset: bigint): Deno.PointerObject {
  const ptr = libc.mmap(
    null,
    BigInt(size),
    C.PROT_READ | C.PROT_WRITE,
    C.MAP_SHARED | MAP_POPULATE,
    fd,
    offset,
  );
  if (ptr === null || Deno.UnsafePointer.value(ptr) === 0xffffffffffffffffn) {
    throw new SysError("mmap io_uring", errno());
  }
  return ptr;
}

/** An io_uring instance. */
export class IoUring {
  readonly fd: number;
  /** Submission queue size. */
  readonly entries: number;
  readonly #maps: { ptr: Deno.PointerObject; size: number }[] = [];
  readonly #sqHead: Uint32Array;
  readonly #sqTail: Uint32Array;
  readonly #sqMask: number;
  readonly #sqArray: Uint32Array;
  readonly #sqes: DataView;
  readonly #cqHead: Uint32Array;
  readonly #cqTail: Uint32Array;
  readonly #cqMask: number;
  readonly #cqes: DataView;
  #tail: number;
  #unsubmitted = 0;
  #closed = false;

  /**
   * Creates a ring with room for `entries` submissions (rounded up to a power of two by the
   * kernel). Throws SysError when the kernel refuses io_uring (ENOSYS, EPERM in a sandbox,
   * io_uring_disabled).
   */
  constructor(entries: number) {
    const params = new Uint8Array(PARAMS_SIZE);
    const pv = new DataView(params.buffer);
    pv.setUint32(8, SETUP_CLAMP, true);
    const fd = Number(libc.io_uring_setup(SYS_IO_URING_SETUP, entries, params));
    if (fd < 0) throw new SysError("io_uring_setup", errno());
    this.fd = fd;
    try {
      const features = pv.getUint32(20, true);
      if (!(features & FEAT_SUBMIT_STABLE) || !(features & FEAT_SINGLE_MMAP)) {
        throw new SysError("io_uring_setup: kernel too old", Errno.ENOSYS);
      }
      const sqEntries = pv.getUint32(0, true);
      const cqEntries = pv.getUint32(4, true);
      this.entries = sqEntries;
      const sq = (f: number) => pv.getUint32(40 + f, true);
      const cq = (f: number) => pv.getUint32(80 + f, true);
      // With SINGLE_MMAP one mapping (at IORING_OFF_SQ_RING) holds both rings.
      const ringSize = Math.max(sq(24) + sqEntries * 4, cq(20) + cqEntries * CQE_SIZE);
      const ring = mapRing(fd, ringSize, OFF_SQ_RING);
      this.#maps.push({ ptr: ring, size: ringSize });
      const sqesSize = sqEntries * SQE_SIZE;
      const sqes = mapRing(fd, sqesSize, OFF_SQES);
      this.#maps.push({ ptr: sqes, size: sqesSize });
      const rb = Deno.UnsafePointerView.getArrayBuffer(ring, ringSize);
      const u32 = (off: number, n = 1) => new Uint32Array(rb, off, n);
      this.#sqHead = u32(sq(0));
      this.#sqTail = u32(sq(4));
      this.#sqMask = u32(sq(8))[0];
      this.#sqArray = u32(sq(24), sqEntries);
      this.#cqHead = u32(cq(0));
      this.#cqTail = u32(cq(4));
      this.#cqMask = u32(cq(8))[0];
      this.#cqes = new DataView(rb, cq(20), cqEntries * CQE_SIZE);
      this.#sqes = new DataView(Deno.UnsafePointerView.getArrayBuffer(sqes, sqesSize));
      this.#tail = this.#sqTail[0];
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Submissions prepared but not yet handed to the kernel. */
  get unsubmitted(): number {
    return this.#unsubmitted;
  }

  /** Free submission slots. */
  get room(): number {
    return this.entries - (this.#tail - Atomics.load(this.#sqHead, 0)) | 0;
  }

  /**
   * Has every completion signalled on `efd` (an eventfd in the caller's event loop). (Not
   * IORING_REGISTER_EVENTFD_ASYNC: it leaves out completions run as task work, e.g. O_DIRECT.)
   */
  registerEventfd(efd: number): void {
    this.#register(REGISTER_EVENTFD, "EVENTFD", new Int32Array([efd]), 1);
  }

  /**
   * IORING_REGISTER_FILES: afterwards a submission with {@link SQE_FIXED_FILE} names a file by
   * its index in `fds`. The ring holds its own reference to each file until it is closed.
   */
  registerFiles(fds: readonly number[]): void {
    this.#register(REGISTER_FILES, "FILES", new Int32Array(fds), fds.length);
  }

  /**
   * IORING_REGISTER_BUFFERS: pins `bufs` (counted against RLIMIT_MEMLOCK) for READ_FIXED by index.
   */
  registerBuffers(bufs: readonly Uint8Array[]): void {
    const iov = new DataView(new ArrayBuffer(bufs.length * IOVEC_SIZE));
    fillIovec(iov, bufs);
    this.#register(REGISTER_BUFFERS, "BUFFERS", iov, bufs.length);
  }

  #register(opcode: number, name: string, arg: ArrayBufferView, n: number): void {
    const bytes = new Uint8Array(arg.buffer, arg.byteOffset, arg.byteLength);
    const r = libc.io_uring_register(SYS_IO_URING_REGISTER, this.fd, opcode, bytes, n);
    if (r < 0n) throw new SysError(`io_uring_register ${name}`, errno());
  }

  /** Queues one submission; false when the submission queue is full (submit first). */
  prepare(s: UringSqe): boolean {
    if (this.room <= 0) return false;
    const idx = this.#tail & this.#sqMask;
    const o = idx * SQE_SIZE;
    const v = this.#sqes;
    for (let i = 0; i < SQE_SIZE; i += 8) v.setBigUint64(o + i, 0n, true);
    v.setUint8(o, s.op);
    if (s.sqeFlags) v.setUint8(o + 1, s.sqeFlags);
    v.setInt32(o + 4, s.fd, true);
    v.setBigUint64(o + 8, s.offset, true);
    v.setBigUint64(o + 16, s.addr, true);
    v.setUint32(o + 24, s.len, true);
    v.setUint32(o + 28, s.flags, true);
    v.setBigUint64(o + 32, BigInt(s.tag >>> 0), true);
    if (s.bufIndex) v.setUint16(o + 40, s.bufIndex, true);
    this.#sqArray[idx] = idx;
    this.#tail = (this.#tail + 1) >>> 0;
    Atomics.store(this.#sqTail, 0, this.#tail); // the kernel reads it in io_uring_enter
    this.#unsubmitted++;
    return true;
  }

  /** Hands every prepared submission to the kernel; returns how many it took. */
  submit(): number {
    if (this.#unsubmitted === 0) return 0;
    for (;;) {
      const r = Number(
        libc.io_uring_enter(SYS_IO_URING_ENTER, this.fd, this.#unsubmitted, 0, 0, null, 0n),
      );
      if (r >= 0) {
        this.#unsubmitted -= r;
        return r;
      }
      const e = errno();
      if (e === Errno.EINTR) continue;
      // EAGAIN/EBUSY: the kernel is short of resources or the CQ is full; completions will
      // free room (the caller submits again after reaping).
      if (e === Errno.EAGAIN || e === Errno.EBUSY) return 0;
      throw new SysError("io_uring_enter", e);
    }
  }

  /**
   * Takes every completion now in the queue and calls `fn(tag, res)` for each (res: bytes or
   * other result, or -errno). The queue head moves before the calls, so `fn` may submit more.
   * Returns the number of completions.
   */
  reap(fn: (tag: number, res: number) => void): number {
    let head = this.#cqHead[0];
    const tail = Atomics.load(this.#cqTail, 0);
    const n = (tail - head) >>> 0;
    if (n === 0) return 0;
    const tags = new Array<number>(n);
    const results = new Array<number>(n);
    for (let i = 0; i < n; i++, head = (head + 1) >>> 0) {
      const o = (head & this.#cqMask) * CQE_SIZE;
      tags[i] = Number(this.#cqes.getBigUint64(o, true) & 0xffffffffn);
      results[i] = this.#cqes.getInt32(o + 8, true);
    }
    Atomics.store(this.#cqHead, 0, head);
    for (let i = 0; i < n; i++) fn(tags[i], results[i]);
    return n;
  }

  /** Unmaps the rings and closes the ring fd (in-flight operations are cancelled by the kernel). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of this.#maps) libc.munmap(m.ptr, BigInt(m.size));
    closeFd(this.fd);
  }
}

/** True when this kernel lets this process create an io_uring. */
export function ioUringAvailable(): boolean {
  try {
    new IoUring(2).close();
    return true;
  } catch {
    return false;
  }
}
