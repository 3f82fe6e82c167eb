/**
 * A little-endian register file described as a table: each register has an offset, a width and
 * read/write handlers. Accesses of any size are split over the registers they touch; bytes that no
 * register covers read as 0 and ignore writes. A write that covers only part of a register merges
 * with the register's current value (read-modify-write).
 *
 * @module
 */

/** One register of at most 32 bits. 64-bit fields are declared as two 32-bit halves. */
export interface Register {
  /** Name for debugging and tests. */
  readonly name: string;
  /** Byte offset in the register file. */
  readonly offset: number;
  /** Width in bytes. */
  readonly width: 1 | 2 | 4;
  /** Current value (unsigned). */
  read(): number;
  /** Stores a new value; absent for read-only registers. */
  write?(value: number): void;
}

/** A table of registers with byte-granular access. */
export class RegisterFile {
  readonly #regs: readonly Register[];

  /** Creates the file; registers must not overlap. */
  constructor(regs: readonly Register[]) {
    this.#regs = [...regs].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < this.#regs.length; i++) {
      const prev = this.#regs[i - 1];
      if (prev.offset + prev.width > this.#regs[i].offset) {
        throw new Error(`register ${prev.name} overlaps ${this.#regs[i].name}`);
      }
    }
  }

  /** Reads `dst.length` bytes at `offset`. */
  read(offset: number, dst: Uint8Array): void {
    dst.fill(0);
    for (const reg of this.#touching(offset, dst.length)) {
      const value = reg.read();
      for (let i = 0; i < reg.width; i++) {
        const at = reg.offset + i - offset;
        if (at >= 0 && at < dst.length) dst[at] = (value >>> (8 * i)) & 0xff;
      }
    }
  }

  /** Writes `src` at `offset`. */
  write(offset: number, src: Uint8Array): void {
    for (const reg of this.#touching(offset, src.length)) {
      if (!reg.write) continue;
      const full = reg.offset >= offset && reg.offset + reg.width <= offset + src.length;
      let value = full ? 0 : reg.read();
      for (let i = 0; i < reg.width; i++) {
        const at = reg.offset + i - offset;
        if (at < 0 || at >= src.length) continue;
        value = (value & ~(0xff << (8 * i))) | (src[at] << (8 * i));
      }
      reg.write(value >>> 0);
    }
  }

  /** Registers overlapping [offset, offset+length). */
  #touching(offset: number, length: number): Register[] {
    return this.#regs.filter((r) => r.offset < offset + length && r.offset + r.width > offset);
  }
}
