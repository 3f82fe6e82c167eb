/**
 * Internet checksum (RFC 1071) and Ethernet FCS (IEEE 802.3 CRC-32) helpers on byte arrays.
 *
 * @module
 */

/**
 * Adds the big-endian 16-bit words of `data[start, end)` to `sum` (an odd trailing byte is the
 * high half of a word padded with zero). Returns the unfolded 32-bit-safe sum.
 */
export function sumWords(data: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) {
    sum += (data[i] << 8) | data[i + 1];
    if (sum > 0x7fffffff) sum = (sum & 0xffff) + (sum >>> 16);
  }
  if (i < end) sum += data[i] << 8;
  return sum;
}

/** Folds a sum to 16 bits (end-around carry). */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum to store: the complement of the folded sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Like {@link finish}, but 0 becomes 0xffff (the same value in ones' complement; UDP style). */
export function finishNonZero(sum: number): number {
  return finish(sum) || 0xffff;
}

/** Reads a big-endian u16. */
export function getU16(data: Uint8Array, at: number): number {
  return (data[at] << 8) | data[at + 1];
}

/** Writes a big-endian u16. */
export function putU16(data: Uint8Array, at: number, v: number): void {
  data[at] = (v >>> 8) & 0xff;
  data[at + 1] = v & 0xff;
}

/** Reads a big-endian u32. */
export function getU32(data: Uint8Array, at: number): number {
  return ((data[at] << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) | data[at + 3]) >>> 0;
}

/** Writes a big-endian u32. */
export function putU32(data: Uint8Array, at: number, v: number): void {
  putU16(data, at, (v >>> 16) & 0xffff);
  putU16(data, at + 2, v & 0xffff);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** IEEE 802.3 CRC-32 of `data` (the FCS value, to be sent least significant byte first). */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
