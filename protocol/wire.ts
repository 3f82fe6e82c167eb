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

/** The bytes of `parts` in order: the only part itself, or one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
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

/** Wire type of a struct field: little-endian unsigned integers. */
export type FieldType = "u16" | "u32" | "u64";

/** A struct's fields in wire order (object key order), each with its wire type. */
export type Layout = Readonly<Record<string, FieldType>>;

/** The decoded values of a {@link Layout}: `number` for u16/u32, `bigint` for u64. */
export type Fields<L extends Layout> = {
  -readonly [K in keyof L]: L[K] extends "u64" ? bigint : number;
};

/** A fixed little-endian struct: the one description both its decoder and encoder use. */
export interface Struct<L extends Layout> {
  /** Size in bytes: the fields packed in order (vfio-user structs need no padding). */
  readonly SIZE: number;
  /** Reads the fields at `at` of `bytes` (the caller checked the length). */
  read(bytes: Uint8Array, at?: number): Fields<L>;
  /** Writes the fields at `at` of `out`; `RangeError` for a value that does not fit its field. */
  write(out: Uint8Array, values: Fields<L>, at?: number): void;
  /** A new buffer: the fields, then `tail` (a message's data part). */
  encode(values: Fields<L>, tail?: Uint8Array): Uint8Array;
  /** Reads a payload of exactly SIZE bytes (EINVAL otherwise). */
  decode(payload: Uint8Array, what: string): Fields<L>;
  /** Reads the fixed head of a payload of at least SIZE bytes (EINVAL otherwise). */
  decodeHead(payload: Uint8Array, what: string): Fields<L>;
  /** Reads `count` consecutive structs starting at `at` (the caller checked the length). */
  readArray(bytes: Uint8Array, at: number, count: number): Fields<L>[];
  /** Writes `items` as consecutive structs starting at `at`. */
  writeArray(out: Uint8Array, items: readonly Fields<L>[], at: number): void;
}

const FIELD_SIZE: Record<FieldType, number> = { u16: 2, u32: 4, u64: 8 };

/** Describes a fixed struct from its fields in wire order, e.g. `{ argsz: "u32", size: "u64" }`. */
export function struct<const L extends Layout>(layout: L): Struct<L> {
  const fields: [string, FieldType, number][] = [];
  let size = 0;
  for (const [name, type] of Object.entries(layout)) {
    fields.push([name, type, size]);
    size += FIELD_SIZE[type];
  }
  const read = (bytes: Uint8Array, at = 0): Fields<L> => {
    const v = viewOf(bytes);
    const out: Record<string, number | bigint> = {};
    for (const [name, type, off] of fields) {
      out[name] = type === "u64"
        ? v.getBigUint64(at + off, true)
        : type === "u32"
        ? v.getUint32(at + off, true)
        : v.getUint16(at + off, true);
    }
    return out as Fields<L>;
  };
  const write = (out: Uint8Array, values: Fields<L>, at = 0): void => {
    const v = viewOf(out);
    const vals = values as Record<string, number | bigint>;
    for (const [name, type, off] of fields) {
      if (type === "u64") setU64(v, at + off, vals[name] as bigint, name);
      else if (type === "u32") setU32(v, at + off, vals[name] as number, name);
      else setU16(v, at + off, vals[name] as number, name);
    }
  };
  return {
    SIZE: size,
    read,
    write,
    encode(values, tail = EMPTY) {
      const out = new Uint8Array(size + tail.length);
      write(out, values);
      out.set(tail, size);
      return out;
    },
    decode(payload, what) {
      requireExact(payload, size, what);
      return read(payload);
    },
    decodeHead(payload, what) {
      requireMin(payload, size, what);
      return read(payload);
    },
    readArray(bytes, at, count) {
      return Array.from({ length: count }, (_, i) => read(bytes, at + size * i));
    },
    writeArray(out, items, at) {
      items.forEach((item, i) => write(out, item, at + size * i));
    },
  };
}

/**
 * argsz, flags, index, count (u32 each): the request and reply of DEVICE_GET_IRQ_INFO, the
 * request and reply head of DEVICE_GET_REGION_IO_FDS.
 */
export const IndexStruct = struct({ argsz: "u32", flags: "u32", index: "u32", count: "u32" });

/** The request of GET_IRQ_INFO and GET_REGION_IO_FDS: only argsz and index may be non-zero. */
export interface IndexQuery {
  /** Largest reply payload the client accepts. */
  argsz: number;
  /** IRQ or region index. */
  index: number;
}

/** Size of an {@link IndexQuery} payload. */
export const INDEX_QUERY_SIZE = IndexStruct.SIZE;

/** Decodes an {@link IndexQuery}: argsz >= 16; flags and count must be zero (spec). */
export function decodeIndexQuery(payload: Uint8Array, what: string): IndexQuery {
  const q = IndexStruct.decode(payload, what);
  requireArgsz(q.argsz, INDEX_QUERY_SIZE, what);
  requireZero(q.flags, `${what} flags`);
  requireZero(q.count, `${what} count`);
  return { argsz: q.argsz, index: q.index };
}

/** Encodes an {@link IndexQuery}. */
export function encodeIndexQuery(req: IndexQuery): Uint8Array {
  return IndexStruct.encode({ argsz: req.argsz, flags: 0, index: req.index, count: 0 });
}

/**
 * The request half of a command whose request is an {@link IndexQuery} (`what` names it in
 * errors): decodeRequest checks argsz >= 16 and zero flags and count.
 */
export function indexQueryRequest(what: string): {
  decodeRequest(payload: Uint8Array): IndexQuery;
  encodeRequest(req: IndexQuery): Uint8Array;
} {
  return {
    decodeRequest: (payload) => decodeIndexQuery(payload, what),
    encodeRequest: encodeIndexQuery,
  };
}
