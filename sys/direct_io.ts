/**
 * Direct I/O (O_DIRECT) helpers: the alignment O_DIRECT needs on a file (statx STATX_DIOALIGN), and
 * page-aligned memory for bounce buffers (anonymous mmap).
 *
 * @module
 */
import { cstr, errno, libc, SysError } from "./ffi.ts";
import { C } from "./layout.ts";

const AT_FDCWD = -100;
const STATX_DIOALIGN = 0x2000;
const STATX_SIZE = 256;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;

/** O_DIRECT (x86_64). */
export const O_DIRECT = 0o40000;

/** What O_DIRECT requires of a transfer on one file. */
export interface DioAlignment {
  /** Every buffer address (each iovec base) is a multiple of this. */
  memory: number;
  /** File offsets and every iovec length are multiples of this (the logical block size). */
  offset: number;
  /** False when the kernel did not say and these are safe guesses (4096). */
  reported: boolean;
}

/** The direct I/O alignment of the file at `path` (statx; 4096/4096 when not reported). */
export function dioAlignment(path: string): DioAlignment {
  const buf = new Uint8Array(STATX_SIZE);
  if (libc.statx(AT_FDCWD, cstr(path), 0, STATX_DIOALIGN, buf) < 0) {
    throw new SysError(`statx ${path}`, errno());
  }
  const v = new DataView(buf.buffer);
  const mask = v.getUint32(0, true);
  const memory = v.getUint32(152, true);
  const offset = v.getUint32(156, true);
  if (!(mask & STATX_DIOALIGN) || memory === 0 || offset === 0) {
    return { memory: 4096, offset: 4096, reported: false };
  }
  return { memory, offset, reported: true };
}

/** Page-aligned memory outside the JS heap, for direct I/O bounce buffers. */
export class AlignedBuffer {
  readonly bytes: Uint8Array;
  readonly #ptr: Deno.PointerObject;
  readonly #size: bigint;
  #freed = false;

  /** Maps `length` bytes (rounded up to whole pages), zero-filled. */
  constructor(length: number) {
    const size = BigInt(Math.max(4096, Math.ceil(length / 4096) * 4096));
    const ptr = libc.mmap(
      null,
      size,
      C.PROT_READ | C.PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS,
      -1,
      0n,
    );
    if (ptr === null || Deno.UnsafePointer.value(ptr) === 0xffffffffffffffffn) {
      throw new SysError("mmap", errno());
    }
    this.#ptr = ptr;
    this.#size = size;
    this.bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, Number(size)));
  }

  /** Unmaps the memory: nothing may touch {@link bytes} afterwards. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    libc.munmap(this.#ptr, this.#size);
  }
}
