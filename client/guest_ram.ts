/**
 * Client-side "guest RAM" for tests: plain memory (exported to the server with DMA_MAP *without*
 * an fd, so the server reaches it through DMA_READ/DMA_WRITE messages) or a shared memfd
 * (exported *with* its fd, so the server mmaps the very same pages: the zero-copy path).
 *
 * @module
 */
import { check, closeFd, cstr, errno, libc, SysError } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";

/** Guest memory the client owns (`using ram = new MemfdRam(...)` frees it at scope end). */
export interface GuestRam extends Disposable {
  /** The bytes, as the guest sees them. */
  readonly bytes: Uint8Array;
  /** Size in bytes. */
  readonly size: number;
  /** An fd to pass with DMA_MAP, or undefined for message-based memory. */
  readonly fd: number | undefined;
  /** Frees the memory. `bytes` must not be touched afterwards. */
  close(): void;
}

/** Guest RAM in a plain `Uint8Array`: only reachable by the server through DMA messages. */
export class ArrayRam implements GuestRam {
  readonly bytes: Uint8Array;
  readonly fd = undefined;

  /** `size` bytes, zero-filled. */
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }

  get size(): number {
    return this.bytes.length;
  }

  close(): void {}

  [Symbol.dispose](): void {}
}

const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

/**
 * Guest RAM in a memfd (`memfd_create` + `ftruncate` + seals + `mmap(MAP_SHARED)`), like QEMU's
 * `memory-backend-memfd,share=on` (sealed against growing and shrinking). Its fd goes with DMA_MAP; the server mmaps it, so device
 * writes show up in {@link bytes} without any message.
 *
 * **Touching `bytes` after {@link close} kills the process** (the pages are unmapped): close
 * only when nothing can reach the view any more.
 */
export class MemfdRam implements GuestRam {
  readonly size: number;
  #fd: number;
  #ptr: Deno.PointerValue;
  #bytes: Uint8Array | undefined;

  /** Creates `size` bytes (a multiple of 4096) of zero-filled shared memory named `name`. */
  constructor(size: number, name = "vfud-test-ram") {
    if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw new RangeError(`MemfdRam: size ${size} is not a positive multiple of 4096`);
    }
    this.size = size;
    const flags = C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING;
    this.#fd = check("memfd_create", libc.memfd_create(cstr(name), flags));
    try {
      check("ftruncate", libc.ftruncate(this.#fd, BigInt(size)));
      // Sealed against resizing like QEMU's memory-backend-memfd (seal=on): servers only mmap
      // guest RAM that cannot shrink under them.
      const seals = C.F_SEAL_SHRINK | C.F_SEAL_GROW | C.F_SEAL_SEAL;
      check("fcntl F_ADD_SEALS", libc.fcntl(this.#fd, C.F_ADD_SEALS, seals));
      const ptr = libc.mmap(
        null,
        BigInt(size),
        C.PROT_READ | C.PROT_WRITE,
        C.MAP_SHARED,
        this.#fd,
        0n,
      );
      if (ptr === null || Deno.UnsafePointer.value(ptr) === MAP_FAILED) {
        throw new SysError("mmap", errno());
      }
      this.#ptr = ptr;
      this.#bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, size));
    } catch (e) {
      closeFd(this.#fd);
      throw e;
    }
  }

  get bytes(): Uint8Array {
    if (!this.#bytes) throw new Error("MemfdRam used after close()");
    return this.#bytes;
  }

  get fd(): number | undefined {
    return this.#fd >= 0 ? this.#fd : undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  close(): void {
    if (this.#ptr !== null) {
      this.#bytes = undefined;
      libc.munmap(this.#ptr, BigInt(this.size));
      this.#ptr = null;
    }
    closeFd(this.#fd);
    this.#fd = -1;
  }
}
