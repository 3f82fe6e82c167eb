/**
 * Little-endian registers reached by accesses of any size and alignment (a vfio-user REGION_READ
 * or REGION_WRITE carries whatever the guest's instruction did): each access is split over the
 * registers it touches, bytes no register covers read as 0 and ignore writes, and a write that
 * covers only part of a register merges with the register's current value (read-modify-write).
 *
 * Two shapes share those byte lanes: {@link RegisterFile}, a table of registers of mixed widths
 * with a read and a write handler each (virtio's common configuration), and
 * {@link dwordRead}/{@link dwordWrite}, a flat space of 32-bit registers that the device looks up
 * itself (the 82540EM's 128 KiB register space with its own table of masks and hooks).
 *
 * @module
 */

/** Stores the bytes of `value` (register of `width` bytes at `at`) that fall in `dst` at `offset`. */
function putLanes(value: number, at: number, width: number, offset: number, dst: Uint8Array): void {
  for (let i = 0; i < width; i++) {
    const p = at + i - offset;
    if (p >= 0 && p < dst.length) dst[p] = (value >>> (8 * i)) & 0xff;
  }
}

/**
 * The new value of a register of `width` bytes at `at` after a write of `src` at `offset`: the
 * written bytes over `old` (only read when the write does not cover the whole register).
 */
function mergeLanes(
  old: () => number,
  at: number,
  width: number,
  offset: number,
  src: Uint8Array,
): number {
  const full = at >= offset && at + width <= offset + src.length;
  let value = full ? 0 : old();
  for (let i = 0; i < width; i++) {
    const p = at + i - offset;
    if (p >= 0 && p < src.length) value = (value & ~(0xff << (8 * i))) | (src[p] << (8 * i));
  }
  return value >>> 0;
}

/** Fills `dst` from the dwords covering [offset, offset+dst.length). */
export function dwordRead(offset: number, dst: Uint8Array, read: (dw: number) => number): void {
  for (let dw = offset & ~3; dw < offset + dst.length; dw += 4) {
    putLanes(read(dw), dw, 4, offset, dst);
  }
}

/**
 * Writes `src` over the dwords it covers; a partly covered dword is merged with `peek` (its value
 * without read side effects).
 */
export function dwordWrite(
  offset: number,
  src: Uint8Array,
  peek: (dw: number) => number,
  write: (dw: number, value: number) => void,
): void {
  for (let dw = offset & ~3; dw < offset + src.length; dw += 4) {
    write(dw, mergeLanes(() => peek(dw), dw, 4, offset, src));
  }
}

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

/** A {@link Register} from its parts (a read-only one without `write`). */
export function register(
  name: string,
  offset: number,
  width: 1 | 2 | 4,
  read: () => number,
  write?: (value: number) => void,
): Register {
  return { name, offset, width, read, write };
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
      putLanes(reg.read(), reg.offset, reg.width, offset, dst);
    }
  }

  /** Writes `src` at `offset`. */
  write(offset: number, src: Uint8Array): void {
    for (const reg of this.#touching(offset, src.length)) {
      if (reg.write) reg.write(mergeLanes(() => reg.read(), reg.offset, reg.width, offset, src));
    }
  }

  /** Registers overlapping [offset, offset+length). */
  #touching(offset: number, length: number): Register[] {
    return this.#regs.filter((r) => r.offset < offset + length && r.offset + r.width > offset);
  }
}
