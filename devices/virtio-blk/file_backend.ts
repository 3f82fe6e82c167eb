/**
 * Raw-file block backend: vectored reads and writes straight between the image file and the
 * request's guest-memory segments (zero-copy when the segments are mmapped guest RAM).
 *
 * With an {@link Aio} engine (io_uring, or I/O threads) every operation is asynchronous and any
 * number overlap at the file; completions come back through the event loop. Without one (tools,
 * tests) the calls are synchronous.
 *
 * `direct`: the image is opened with O_DIRECT (no host page cache). The alignment the file needs
 * (statx STATX_DIOALIGN) is advertised as the logical block size, and a transfer that still does
 * not meet it is handled: misaligned guest buffers go through an aligned bounce buffer, a range
 * that is not block aligned through a second, buffered descriptor of the same file (the kernel
 * keeps the two coherent: direct I/O writes back and invalidates the cached range first).
 *
 * FLUSH (`flush`) waits for the writes in flight when it is called, then `fdatasync`s: every
 * write issued before a FLUSH is durable when it completes, and nothing else waits for it.
 *
 * @module
 */
import { Errno } from "../../sys/errno.ts";
import { check, closeFd, cstr, errno, libc, retry, SysError } from "../../sys/ffi.ts";
import { addressOf, C, fillIovec, IOVEC_SIZE } from "../../sys/layout.ts";
import { type Aio, AIO_MAX_SEGMENTS } from "../../sys/aio.ts";
import { AlignedBuffer, type DioAlignment, dioAlignment, O_DIRECT } from "../../sys/direct_io.ts";
import { accessHint } from "../../sys/ids.ts";
import type { BlockBackend } from "./backend.ts";

const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const FALLOC_FL_ZERO_RANGE = 0x10;
/** Zeros written per call when the file system cannot zero a range itself. */
const ZERO_CHUNK = 1 << 20;

/** Options of {@link FileBackend.open}. */
export interface FileBackendOptions {
  path: string;
  readonly: boolean;
  /** Create a sparse image of this size when the file does not exist. */
  createSize?: bigint;
  /** Open with O_DIRECT (bypass the host page cache). */
  direct?: boolean;
  /** Asynchronous engine (see the module doc), closed with the backend; synchronous without. */
  aio?: Aio;
  /** Overrides the alignment statx reports (tests). */
  alignment?: DioAlignment;
}

/** A block backend over a raw image file. */
export class FileBackend implements BlockBackend {
  readonly size: bigint;
  /** The file's own size (`size` is it rounded down to whole sectors). */
  readonly fileSize: bigint;
  readonly readonly: boolean;
  readonly path: string;
  /** O_DIRECT in force. */
  readonly direct: boolean;
  readonly blockSize: number;
  #fd: number;
  /** Buffered descriptor for ranges O_DIRECT cannot take (direct only). */
  #bufferedFd = -1;
  readonly #aio: Aio | undefined;
  readonly #align: DioAlignment | undefined;
  #iov = new Uint8Array(IOVEC_SIZE * AIO_MAX_SEGMENTS);
  #iovView = new DataView(this.#iov.buffer);
  /** Writes in flight (FLUSH waits for those issued before it). */
  readonly #writes = new Set<Promise<void>>();
  /** Counters of the direct I/O fallbacks (diagnostics and tests). */
  readonly stats = { bounced: 0, buffered: 0 };

  private constructor(opts: FileBackendOptions, fd: number, fileSize: bigint) {
    this.path = opts.path;
    this.#fd = fd;
    this.fileSize = fileSize;
    this.size = fileSize & ~511n;
    this.readonly = opts.readonly;
    this.direct = opts.direct ?? false;
    this.#aio = opts.aio;
    this.#align = this.direct ? opts.alignment ?? dioAlignment(opts.path) : undefined;
    this.blockSize = Math.max(512, this.#align?.offset ?? 512);
  }

  /** Opens (optionally creating) the image. The size is the file size rounded down to 512. */
  static open(opts: FileBackendOptions): FileBackend {
    let flags = (opts.readonly ? C.O_RDONLY : C.O_RDWR) | C.O_CLOEXEC;
    if (opts.createSize !== undefined && !opts.readonly) flags |= C.O_CREAT;
    const fd = libc.open(cstr(opts.path), flags, 0o600);
    if (fd < 0) throw openError(opts.path, errno());
    let direct = -1;
    try {
      let size = check(`lseek ${opts.path}`, libc.lseek(fd, 0n, 2 /* SEEK_END */));
      if (size === 0n && opts.createSize !== undefined && !opts.readonly) {
        check(`ftruncate ${opts.path}`, libc.ftruncate(fd, opts.createSize));
        size = opts.createSize;
      }
      if (!opts.direct) return new FileBackend(opts, fd, size);
      direct = libc.open(cstr(opts.path), (flags & ~C.O_CREAT) | O_DIRECT, 0);
      if (direct < 0) throw openError(`${opts.path} (O_DIRECT)`, errno());
      const b = new FileBackend(opts, direct, size);
      b.#bufferedFd = fd;
      return b;
    } catch (e) {
      closeFd(direct);
      closeFd(fd);
      throw e;
    }
  }

  readv(offset: bigint, segs: readonly Uint8Array[]): Promise<void> | void {
    return this.#transfer(false, offset, segs);
  }

  writev(offset: bigint, segs: readonly Uint8Array[]): Promise<void> | void {
    if (this.readonly) throw new SysError(`pwritev ${this.path}`, Errno.EROFS);
    const r = this.#transfer(true, offset, segs);
    if (!r) return;
    const tracked = r.finally(() => this.#writes.delete(tracked));
    this.#writes.add(tracked);
    return tracked;
  }

  flush(): Promise<void> | void {
    if (this.readonly) return;
    const aio = this.#aio;
    if (!aio) {
      check(`fdatasync ${this.path}`, retry(() => libc.fdatasync(this.#fd)));
      return;
    }
    const earlier = [...this.#writes];
    const sync = () =>
      new Promise<void>((resolve, reject) =>
        aio.fsync(
          this.#fd,
          true,
          (r) => r < 0 ? reject(new SysError(`fdatasync ${this.path}`, -r)) : resolve(),
        )
      );
    // a failed earlier write was reported to its own request; the flush still syncs the rest
    return earlier.length ? Promise.allSettled(earlier).then(sync) : sync();
  }

  discard(offset: bigint, length: bigint): Promise<void> | void {
    return this.#fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  }

  async writeZeroes(offset: bigint, length: bigint, unmap: boolean): Promise<void> {
    const mode = unmap
      ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
      : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    try {
      await this.#fallocate(mode, offset, length);
    } catch (e) {
      if (!(e instanceof SysError) || e.errno !== Errno.ENOTSUP) throw e;
      // the file system cannot do it: write zeros
      const zeros = new AlignedBuffer(Math.min(ZERO_CHUNK, Number(length)));
      try {
        for (let at = 0n; at < length;) {
          const n = length - at < BigInt(zeros.bytes.length)
            ? Number(length - at)
            : zeros.bytes.length;
          await this.writev(offset + at, [zeros.bytes.subarray(0, n)]);
          at += BigInt(n);
        }
      } finally {
        zeros.free();
      }
    }
  }

  close(): void {
    this.#aio?.close();
    closeFd(this.#fd);
    closeFd(this.#bufferedFd);
    this.#fd = this.#bufferedFd = -1;
  }

  #fallocate(mode: number, offset: bigint, length: bigint): Promise<void> {
    if (this.readonly) return Promise.reject(new SysError(`fallocate ${this.path}`, Errno.EROFS));
    const aio = this.#aio;
    if (!aio) {
      if (retry(() => libc.fallocate(this.#fd, mode, offset, length)) < 0) {
        return Promise.reject(new SysError(`fallocate ${this.path}`, errno()));
      }
      return Promise.resolve();
    }
    return new Promise((resolve, reject) =>
      aio.fallocate(
        this.#fd,
        mode,
        offset,
        length,
        (r) => r < 0 ? reject(new SysError(`fallocate ${this.path}`, -r)) : resolve(),
      )
    );
  }

  #transfer(write: boolean, offset: bigint, segs: readonly Uint8Array[]): Promise<void> | void {
    const parts = segs.some((s) => s.length === 0) ? segs.filter((s) => s.length > 0) : segs;
    if (parts.length === 0) return this.#aio ? Promise.resolve() : undefined;
    if (!this.#aio) return this.#sync(write, offset, parts);
    const a = this.#align;
    if (!a) return this.#submit(this.#fd, write, offset, parts);
    let total = 0;
    let fits = offset % BigInt(a.offset) === 0n;
    for (const s of parts) {
      total += s.length;
      if (s.length % a.offset !== 0 || Number(addressOf(s) % BigInt(a.memory)) !== 0) fits = false;
    }
    if (fits) return this.#submit(this.#fd, write, offset, parts);
    if (offset % BigInt(a.offset) === 0n && total % a.offset === 0) {
      this.stats.bounced++;
      return this.#bounced(write, offset, parts, total);
    }
    this.stats.buffered++;
    return this.#submit(this.#bufferedFd, write, offset, parts);
  }

  /** Through an aligned buffer: block-aligned range, guest buffers O_DIRECT cannot take. */
  async #bounced(
    write: boolean,
    offset: bigint,
    parts: readonly Uint8Array[],
    total: number,
  ): Promise<void> {
    const buf = new AlignedBuffer(total);
    try {
      const b = buf.bytes.subarray(0, total);
      if (write) copyIn(b, parts);
      await this.#submit(this.#fd, write, offset, [b]);
      if (!write) copyOut(b, parts);
    } finally {
      buf.free();
    }
  }

  /** Every byte of `parts` through the engine: batches of IOV_MAX, short transfers resumed. */
  #submit(fd: number, write: boolean, offset: bigint, parts: readonly Uint8Array[]): Promise<void> {
    const aio = this.#aio!;
    return new Promise((resolve, reject) => {
      let pending = parts;
      let at = offset;
      const next = () => {
        const batch = pending.length > AIO_MAX_SEGMENTS
          ? pending.slice(0, AIO_MAX_SEGMENTS)
          : pending;
        const done = (r: number) => {
          if (r < 0) {
            return reject(new SysError(`${write ? "pwritev" : "preadv"} ${this.path}`, -r));
          }
          if (r === 0) {
            return reject(new SysError(`${this.path}: unexpected end of file`, Errno.EIO));
          }
          at += BigInt(r);
          pending = advance(pending, r);
          if (pending.length === 0) resolve();
          else next();
        };
        if (write) aio.writev(fd, batch, at, done);
        else aio.readv(fd, batch, at, done);
      };
      next();
    });
  }

  /** Moves every byte of `segs` synchronously, looping over short transfers and IOV_MAX batches. */
  #sync(write: boolean, offset: bigint, segs: readonly Uint8Array[]): void {
    const op = write ? "pwritev" : "preadv";
    const what = `${op} ${this.path}`;
    let pending = segs;
    let off = offset;
    while (pending.length) {
      const batch = pending.slice(0, AIO_MAX_SEGMENTS);
      fillIovec(this.#iovView, batch);
      const fd = this.#align ? this.#bufferedFd : this.#fd;
      const r = retry(() => libc[op](fd, this.#iov, batch.length, off));
      if (r < 0) throw new SysError(what, errno());
      if (r === 0n) throw new SysError(`${what}: unexpected end of file`, Errno.EIO);
      off += BigInt(r);
      pending = advance(pending, Number(r));
    }
  }
}

/** The error of a failed open, with a hint at ownership when access was denied. */
function openError(path: string, err: number): SysError {
  const e = new SysError(`open ${path}`, err);
  if (err === Errno.EACCES || err === Errno.EPERM) e.message += `: ${accessHint(path)}`;
  return e;
}

/** Drops the first `n` bytes of a segment list. */
function advance(segs: readonly Uint8Array[], n: number): readonly Uint8Array[] {
  let i = 0;
  while (i < segs.length && n >= segs[i].length) n -= segs[i++].length;
  const rest = segs.slice(i);
  if (n > 0 && rest.length) rest[0] = rest[0].subarray(n);
  return rest;
}

function copyIn(dst: Uint8Array, parts: readonly Uint8Array[]): void {
  let at = 0;
  for (const p of parts) {
    dst.set(p, at);
    at += p.length;
  }
}

function copyOut(src: Uint8Array, parts: readonly Uint8Array[]): void {
  let at = 0;
  for (const p of parts) {
    p.set(src.subarray(at, at + p.length));
    at += p.length;
  }
}
