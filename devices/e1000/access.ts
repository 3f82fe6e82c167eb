/**
 * Byte-granular accesses on a file of 32-bit little-endian registers: the 82540EM's registers
 * are dwords (SDM §13.1: "all registers should be accessed as 32-bit"); smaller or unaligned
 * accesses read whole dwords and merge writes with the current value.
 *
 * @module
 */

/** Fills `dst` from the dwords covering [offset, offset+dst.length). */
export function dwordRead(offset: number, dst: Uint8Array, read: (dw: number) => number): void {
  const end = offset + dst.length;
  for (let dw = offset & ~3; dw < end; dw += 4) {
    const v = read(dw);
    for (let i = 0; i < 4; i++) {
      const p = dw + i - offset;
      if (p >= 0 && p < dst.length) dst[p] = (v >>> (8 * i)) & 0xff;
    }
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
  const end = offset + src.length;
  for (let dw = offset & ~3; dw < end; dw += 4) {
    const full = dw >= offset && dw + 4 <= end;
    let v = full ? 0 : peek(dw);
    for (let i = 0; i < 4; i++) {
      const p = dw + i - offset;
      if (p < 0 || p >= src.length) continue;
      v = (v & ~(0xff << (8 * i))) | (src[p] << (8 * i));
    }
    write(dw, v >>> 0);
  }
}
