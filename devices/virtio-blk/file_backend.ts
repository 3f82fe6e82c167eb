/**
 * Raw-file block backend: vectored `preadv`/`pwritev` straight between the image file and the
 * request's guest-memory segments (zero-copy when the segments are mmapped guest RAM), and
 * `fdatasync` for FLUSH.
 *
 * @module
 */
import { Errno } from "../../sys/errno.ts";
import { check, closeFd, cstr, errno, libc, retry, SysError } from "../../sys/ffi.ts";
import { C, fillIovec, IOVEC_SIZE } from "../../sys/layout.ts";
import { accessHint } from "../../sys/ids.ts";
import type { BlockBackend } from "./backend.ts";

/** Linux IOV_MAX: iovecs per preadv/pwritev call. */
const IOV_MAX = 1024;

/** Options of {@link FileBackend.open}. */
export interface FileBackendOptions {
  path: string;
  readonly: boolean;
  /** Create a sparse image of this size when the file does not exist. */
  createSize?: bigint;
}

/** A block backend over a raw image file. */
export class FileBackend implements BlockBackend {
  readonly size: bigint;
  /** The file's own size (`size` is it rounded down to whole sectors). */
  readonly fileSize: bigint;
  readonly readonly: boolean;
  readonly path: string;
  #fd: number;
  #iov = new Uint8Array(IOVEC_SIZE * IOV_MAX);
  #iovView = new DataView(this.#iov.buffer);

  private constructor(path: string, fd: number, fileSize: bigint, readonly: boolean) {
    this.path = path;
    this.#fd = fd;
    this.fileSize = fileSize;
    this.size = fileSize & ~511n;
    this.readonly = readonly;
  }

  /** Opens (optionally creating) the image. The size is the file size rounded down to 512. */
  static open(opts: FileBackendOptions): FileBackend {
    let flags = (opts.readonly ? C.O_RDONLY : C.O_RDWR) | C.O_CLOEXEC;
    if (opts.createSize !== undefined && !opts.readonly) flags |= C.O_CREAT;
    const fd = libc.open(cstr(opts.path), flags, 0o600);
    if (fd < 0) {
      const err = errno();
      const e = new SysError(`open ${opts.path}`, err);
      if (err === Errno.EACCES || err === Errno.EPERM) e.message += `: ${accessHint(opts.path)}`;
      throw e;
    }
    try {
      let size = check(`lseek ${opts.path}`, libc.lseek(fd, 0n, 2 /* SEEK_END */));
      if (size === 0n && opts.createSize !== undefined && !opts.readonly) {
        check(`ftruncate ${opts.path}`, libc.ftruncate(fd, opts.createSize));
        size = opts.createSize;
      }
      return new FileBackend(opts.path, fd, size, opts.readonly);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  readv(offset: bigint, segs: readonly Uint8Array[]): void {
    this.#vectored("preadv", offset, segs);
  }

  writev(offset: bigint, segs: readonly Uint8Array[]): void {
    if (this.readonly) throw new SysError(`pwritev ${this.path}`, Errno.EROFS);
    this.#vectored("pwritev", offset, segs);
  }

  flush(): void {
    if (this.readonly) return;
    check(`fdatasync ${this.path}`, retry(() => libc.fdatasync(this.#fd)));
  }

  close(): void {
    closeFd(this.#fd);
    this.#fd = -1;
  }

  /** Moves every byte of `segs`, looping over short transfers and IOV_MAX batches. */
  #vectored(op: "preadv" | "pwritev", offset: bigint, segs: readonly Uint8Array[]): void {
    let pending = segs.filter((s) => s.length > 0);
    let off = offset;
    while (pending.length) {
      const batch = pending.slice(0, IOV_MAX);
      fillIovec(this.#iovView, batch);
      const r = retry(() => libc[op](this.#fd, this.#iov, batch.length, off));
      if (r < 0) throw new SysError(`${op} ${this.path}`, errno());
      if (r === 0n) throw new SysError(`${op} ${this.path}: unexpected end of file`, Errno.EIO);
      off += BigInt(r);
      pending = advance(pending, Number(r));
    }
  }
}

/** Drops the first `n` bytes of a segment list. */
function advance(segs: Uint8Array[], n: number): Uint8Array[] {
  let i = 0;
  while (i < segs.length && n >= segs[i].length) n -= segs[i++].length;
  const rest = segs.slice(i);
  if (n > 0 && rest.length) rest[0] = rest[0].subarray(n);
  return rest;
}
