/**
 * Little-endian field access and the length/flag checks every codec shares.
 *
 * All integers on the wire are little-endian (vfio-user spec, "Protocol Specification": host
 * endianness, and every known host is little-endian; we pin it). Decoders use the `require*`
 * helpers to turn malformed peer input into `VfioUserError(EINVAL)`; encoders use the
 * `check*` helpers, which throw `RangeError` because a bad value there is our own bug.
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";

/** A zero-length payload, shared by messages that carry none. */
export const EMPTY: Uint8Array = new Uint8Array(0);

/** Largest u32. */
export const U32_MAX = 0xffff_ffff;

/** Largest u64, as a bigint. */
export const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** The key of `table` whose value is `value` (a command, index or flag name), if any. */
export function nameOf(table: Readonly<Record<string, number>>, value: number): string | undefined {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  return undefined;
}

/** A `DataView` over exactly the bytes of `bytes` (no copy). */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Throws `VfioUserError(EINVAL)` when `payload` is shorter than `min` bytes. */
export function requireMin(payload: Uint8Array, min: number, what: string): void {
  if (payload.length < min) {
    throw new VfioUserError(Errno.EINVAL, `${what}: payload ${payload.length} bytes < ${min}`);
  }
}

/**
 * Throws `VfioUserError(EINVAL)` unless `payload` is exactly `len` bytes. Trailing bytes are
 * rejected too: every message this protocol defines has a size fully determined by its fields,
 * and a mismatch means the peer and we disagree on the layout.
 */
export function requireExact(payload: Uint8Array, len: number, what: string): void {
  if (payload.length < len) {
    throw new VfioUserError(Errno.EINVAL, `${what}: payload ${payload.length} bytes < ${len}`);
  }
  if (payload.length > len) {
    throw new VfioUserError(
      Errno.EINVAL,
      `${what}: ${payload.length - len} trailing bytes after ${len}`,
    );
  }
}

/** Throws `VfioUserError(EINVAL)` when `value` has bits outside `known`. */
export function requireFlags(value: number, known: number, what: string): void {
  const unknown = (value & ~known) >>> 0;
  if (unknown !== 0) {
    throw new VfioUserError(
      Errno.EINVAL,
      `${what}: unknown flag bits 0x${unknown.toString(16)} in 0x${value.toString(16)}`,
    );
  }
}

/** Throws `VfioUserError(EINVAL)` unless a field the spec says must be zero is zero. */
export function requireZero(value: number | bigint, what: string): void {
  if (value !== 0 && value !== 0n) {
    throw new VfioUserError(Errno.EINVAL, `${what} must be zero, got ${value}`);
  }
}

/** Throws `VfioUserError(EINVAL)` when `argsz` is below the fixed size of the struct. */
export function requireArgsz(argsz: number, min: number, what: string): void {
  if (argsz < min) {
    throw new VfioUserError(Errno.EINVAL, `${what}: argsz ${argsz} < ${min}`);
  }
}

/** Throws `VfioUserError(EINVAL)` when `base + length` wraps past 2^64. */
export function requireNoWrap(base: bigint, length: bigint, what: string): void {
  if (base + length > U64_MAX + 1n) {
    throw new VfioUserError(
      Errno.EINVAL,
      `${what}: 0x${base.toString(16)} + 0x${length.toString(16)} wraps`,
    );
  }
}

/** A u64 that is used as a count or length, as a `number`; EINVAL when above 2^53. */
export function u64ToNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VfioUserError(Errno.EINVAL, `${what} ${value} is too large`);
  }
  return Number(value);
}

/** Checks that `value` is an integer in [0, max]; throws `RangeError` (a local bug) if not. */
export function checkUint(value: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} out of range: ${value}`);
  }
  return value;
}

/** Checks that `value` fits in a u64; throws `RangeError` (a local bug) if not. */
export function checkU64(value: bigint, what: string): bigint {
  if (value < 0n || value > U64_MAX) throw new RangeError(`${what} out of range: ${value}`);
  return value;
}

/** Sets a u16 at `off` after range-checking it. */
export function setU16(v: DataView, off: number, value: number, what: string): void {
  v.setUint16(off, checkUint(value, 0xffff, what), true);
}

/** Sets a u32 at `off` after range-checking it. */
export function setU32(v: DataView, off: number, value: number, what: string): void {
  v.setUint32(off, checkUint(value, U32_MAX, what), true);
}

/** Sets a u64 at `off` after range-checking it. */
export function setU64(v: DataView, off: number, value: bigint, what: string): void {
  v.setBigUint64(off, checkU64(value, what), true);
}

/** The request of GET_IRQ_INFO and GET_REGION_IO_FDS: argsz, flags, index, count (u32 each). */
export interface IndexQuery {
  /** Largest reply payload the client accepts. */
  argsz: number;
  /** IRQ or region index. */
  index: number;
}

/** Size of an {@link IndexQuery} payload. */
export const INDEX_QUERY_SIZE = 16;

/** Decodes an {@link IndexQuery}: argsz >= 16; flags and count must be zero (spec). */
export function decodeIndexQuery(payload: Uint8Array, what: string): IndexQuery {
  requireExact(payload, INDEX_QUERY_SIZE, what);
  const v = viewOf(payload);
  const argsz = v.getUint32(0, true);
  requireArgsz(argsz, INDEX_QUERY_SIZE, what);
  requireZero(v.getUint32(4, true), `${what} flags`);
  requireZero(v.getUint32(12, true), `${what} count`);
  return { argsz, index: v.getUint32(8, true) };
}

/** Encodes an {@link IndexQuery}. */
export function encodeIndexQuery(req: IndexQuery): Uint8Array {
  const out = new Uint8Array(INDEX_QUERY_SIZE);
  const v = viewOf(out);
  setU32(v, 0, req.argsz, "argsz");
  setU32(v, 8, req.index, "index");
  return out;
}
