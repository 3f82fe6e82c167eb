/**
 * A first-fit allocator over a range of guest memory the client can see (`bytes` at guest
 * address `iova`): the test driver places rings, request headers and data buffers with it.
 *
 * @module
 */

interface Block {
  addr: bigint;
  len: number;
}

/** Guest memory [iova, iova + bytes.length) with allocation. */
export class GuestArena {
  /** Guest address of `bytes[0]`. */
  readonly iova: bigint;
  /** The client's view of the memory. */
  readonly bytes: Uint8Array;
  #used: Block[] = [];

  constructor(iova: bigint, bytes: Uint8Array) {
    this.iova = iova;
    this.bytes = bytes;
  }

  /** One past the last guest address. */
  get end(): bigint {
    return this.iova + BigInt(this.bytes.length);
  }

  /** True when [addr, addr+len) lies inside the arena. */
  contains(addr: bigint, len: number): boolean {
    return addr >= this.iova && addr + BigInt(len) <= this.end;
  }

  /** The bytes of [addr, addr+len) (a view). */
  view(addr: bigint, len: number): Uint8Array {
    if (!this.contains(addr, len)) {
      throw new RangeError(`guest range 0x${addr.toString(16)}+${len} outside the arena`);
    }
    const off = Number(addr - this.iova);
    return this.bytes.subarray(off, off + len);
  }

  /** Allocates `len` bytes aligned to `align` (a power of two); throws when full. */
  alloc(len: number, align = 16): bigint {
    const a = BigInt(align);
    let cursor = this.iova;
    for (let i = 0; i <= this.#used.length; i++) {
      const start = (cursor + a - 1n) & ~(a - 1n);
      const limit = i < this.#used.length ? this.#used[i].addr : this.end;
      if (start + BigInt(len) <= limit) {
        this.#used.splice(i, 0, { addr: start, len: Math.max(len, 1) });
        return start;
      }
      if (i < this.#used.length) cursor = this.#used[i].addr + BigInt(this.#used[i].len);
    }
    throw new RangeError(`guest arena: no room for ${len} bytes`);
  }

  /** Frees an allocation made by {@link alloc}. */
  free(addr: bigint): void {
    const i = this.#used.findIndex((b) => b.addr === addr);
    if (i < 0) throw new Error(`guest arena: 0x${addr.toString(16)} was not allocated`);
    this.#used.splice(i, 1);
  }

  /** Bytes currently allocated. */
  get allocated(): number {
    return this.#used.reduce((n, b) => n + b.len, 0);
  }
}
