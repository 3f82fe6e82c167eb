/**
 * Plain state records: the self-describing binary encoding of the device state that travels in
 * a migration stream (migration/stream.ts puts one record in each section), and a validating
 * reader for decoded records, which are untrusted input like any other peer data.
 *
 * A record is plain data: `null`, booleans, safe integers (number), u64 (bigint), strings,
 * bytes (`Uint8Array`), arrays and objects of records. Encoding (all little-endian):
 *
 * | tag  | value                                                          |
 * | ---- | -------------------------------------------------------------- |
 * | 0x00 | null                                                           |
 * | 0x01 | false                                                          |
 * | 0x02 | true                                                           |
 * | 0x03 | integer (\|v\| < 2^52): zigzag LEB128                          |
 * | 0x04 | u64: 8 bytes                                                   |
 * | 0x05 | string: LEB128 byte length, UTF-8                              |
 * | 0x06 | bytes: LEB128 length, raw                                      |
 * | 0x07 | array: LEB128 count, items                                     |
 * | 0x08 | object: LEB128 count, then (key as LEB128 length + UTF-8, value) |
 *
 * The encoding is canonical: LEB128 numbers are minimal, object keys appear once and in the
 * order the encoder saw them, so decode → encode gives the input bytes back and the same record
 * always gives the same bytes. The decoder refuses anything else (EINVAL): unknown tags,
 * non-minimal numbers, duplicate keys, invalid UTF-8, nesting deeper than
 * {@link MAX_RECORD_DEPTH}, trailing bytes.
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";
import { VfioUserError } from "./errors.ts";
import { U64_MAX } from "./wire.ts";

/** A record value. */
export type RecordValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly RecordValue[]
  | { readonly [key: string]: RecordValue };

/** Deepest nesting of arrays and objects accepted. */
export const MAX_RECORD_DEPTH = 16;

const Tag = {
  NULL: 0,
  FALSE: 1,
  TRUE: 2,
  INT: 3,
  U64: 4,
  STRING: 5,
  BYTES: 6,
  ARRAY: 7,
  OBJECT: 8,
} as const;

class Writer {
  #buf = new Uint8Array(256);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.#buf.subarray(0, this.#len));
    this.#buf = bigger;
  }

  byte(b: number): void {
    this.#room(1);
    this.#buf[this.#len++] = b;
  }

  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  /** Unsigned LEB128 of a non-negative safe integer. */
  leb(n: number): void {
    let v = n;
    while (v >= 0x80) {
      this.byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.byte(v);
  }

  done(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

function encodeValue(w: Writer, v: RecordValue, depth: number): void {
  if (depth > MAX_RECORD_DEPTH) throw new RangeError("record nested too deeply");
  if (v === null) return w.byte(Tag.NULL);
  if (typeof v === "boolean") return w.byte(v ? Tag.TRUE : Tag.FALSE);
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v) || Math.abs(v) >= 2 ** 52) {
      throw new RangeError(`record: ${v} is not an integer of at most 52 bits`);
    }
    w.byte(Tag.INT);
    return w.leb(v >= 0 ? v * 2 : -v * 2 - 1);
  }
  if (typeof v === "bigint") {
    if (v < 0n || v > U64_MAX) throw new RangeError(`record: ${v} is not a u64`);
    w.byte(Tag.U64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return w.bytes(b);
  }
  if (typeof v === "string") {
    const b = new TextEncoder().encode(v);
    w.byte(Tag.STRING);
    w.leb(b.length);
    return w.bytes(b);
  }
  if (v instanceof Uint8Array) {
    w.byte(Tag.BYTES);
    w.leb(v.length);
    return w.bytes(v);
  }
  if (Array.isArray(v)) {
    w.byte(Tag.ARRAY);
    w.leb(v.length);
    for (const item of v) encodeValue(w, item, depth + 1);
    return;
  }
  if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, RecordValue>);
    w.byte(Tag.OBJECT);
    w.leb(entries.length);
    for (const [k, item] of entries) {
      if (item === undefined) throw new RangeError(`record: key ${k} is undefined`);
      const kb = new TextEncoder().encode(k);
      w.leb(kb.length);
      w.bytes(kb);
      encodeValue(w, item, depth + 1);
    }
    return;
  }
  throw new RangeError(`record: cannot encode a ${typeof v}`);
}

/** Encodes a record. Throws `RangeError` for values that are not plain record data. */
export function encodeRecord(v: RecordValue): Uint8Array {
  const w = new Writer();
  encodeValue(w, v, 0);
  return w.done();
}

function bad(what: string): never {
  throw new VfioUserError(Errno.EINVAL, `state record: ${what}`);
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

class Reader {
  #at = 0;
  readonly #b: Uint8Array;

  constructor(b: Uint8Array) {
    this.#b = b;
  }

  get done(): boolean {
    return this.#at === this.#b.length;
  }

  get offset(): number {
    return this.#at;
  }

  byte(): number {
    if (this.#at >= this.#b.length) bad(`ends early at byte ${this.#at}`);
    return this.#b[this.#at++];
  }

  take(n: number): Uint8Array {
    if (n > this.#b.length - this.#at) bad(`${n} bytes wanted at ${this.#at}, stream ends`);
    const out = this.#b.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  /** Unsigned LEB128, minimal, at most 2^53 - 1. */
  leb(): number {
    let v = 0;
    let scale = 1;
    for (let i = 0;; i++) {
      const b = this.byte();
      if (i === 7 && b > 0x0f) bad("number beyond 2^53");
      v += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) bad("non-minimal number");
        return v;
      }
      scale *= 0x80;
    }
  }

  text(n: number): string {
    try {
      return UTF8.decode(this.take(n));
    } catch {
      return bad("invalid UTF-8");
    }
  }
}

function decodeValue(r: Reader, depth: number): RecordValue {
  if (depth > MAX_RECORD_DEPTH) bad(`nested deeper than ${MAX_RECORD_DEPTH}`);
  const tag = r.byte();
  switch (tag) {
    case Tag.NULL:
      return null;
    case Tag.FALSE:
      return false;
    case Tag.TRUE:
      return true;
    case Tag.INT: {
      const z = r.leb();
      return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    }
    case Tag.U64: {
      const b = r.take(8);
      return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    }
    case Tag.STRING:
      return r.text(r.leb());
    case Tag.BYTES:
      return r.take(r.leb()).slice();
    case Tag.ARRAY: {
      const n = r.leb();
      const out: RecordValue[] = [];
      // Every item takes at least one byte: a count beyond what is left fails in the loop.
      for (let i = 0; i < n; i++) out.push(decodeValue(r, depth + 1));
      return out;
    }
    case Tag.OBJECT: {
      const n = r.leb();
      const out: Record<string, RecordValue> = {};
      for (let i = 0; i < n; i++) {
        const key = r.text(r.leb());
        if (Object.hasOwn(out, key)) bad(`duplicate key "${key}"`);
        // defineProperty: a key such as "__proto__" stays an ordinary own field
        Object.defineProperty(out, key, {
          value: decodeValue(r, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    default:
      return bad(`unknown tag 0x${tag.toString(16)} at byte ${r.offset - 1}`);
  }
}

/** Decodes one record that must fill `bytes` exactly; throws `VfioUserError(EINVAL)`. */
export function decodeRecord(bytes: Uint8Array): RecordValue {
  const r = new Reader(bytes);
  const v = decodeValue(r, 0);
  if (!r.done) bad(`${bytes.length - r.offset} trailing bytes`);
  return v;
}

/**
 * Reads the fields of a decoded (untrusted) record object. Every accessor checks presence and
 * type and throws `ErrnoError(EINVAL)` naming the field; {@link done} refuses fields nobody
 * read (a record of another layout). `path` names the record in messages.
 */
export class RecordReader {
  readonly path: string;
  readonly #o: Record<string, RecordValue>;
  readonly #seen = new Set<string>();

  constructor(value: unknown, path: string) {
    this.path = path;
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new ErrnoError(Errno.EINVAL, `state ${path}: not a record`);
    }
    if (value instanceof Uint8Array) {
      throw new ErrnoError(Errno.EINVAL, `state ${path}: not a record`);
    }
    this.#o = value as Record<string, RecordValue>;
  }

  /** Throws `VfioUserError(EINVAL)` about field `key` (or the record when key is empty). */
  fail(key: string, why: string): never {
    const at = key ? `${this.path}.${key}` : this.path;
    throw new ErrnoError(Errno.EINVAL, `state ${at}: ${why}`);
  }

  #get(key: string): RecordValue {
    this.#seen.add(key);
    if (!Object.hasOwn(this.#o, key)) this.fail(key, "missing");
    return this.#o[key];
  }

  /** True when the record has `key`. */
  has(key: string): boolean {
    return Object.hasOwn(this.#o, key);
  }

  /** An integer in [min, max]. */
  int(key: string, min: number, max: number): number {
    const v = this.#get(key);
    if (typeof v !== "number") this.fail(key, "not an integer");
    if (v < min || v > max) this.fail(key, `${v} not in [${min}, ${max}]`);
    return v;
  }

  /** An unsigned integer of `bits` bits (at most 53). */
  uint(key: string, bits: number): number {
    return this.int(key, 0, 2 ** bits - 1);
  }

  /** A u64. */
  u64(key: string): bigint {
    const v = this.#get(key);
    if (typeof v !== "bigint") this.fail(key, "not a u64");
    return v;
  }

  /** A boolean. */
  bool(key: string): boolean {
    const v = this.#get(key);
    if (typeof v !== "boolean") this.fail(key, "not a boolean");
    return v;
  }

  /** A string of at most `max` UTF-16 units. */
  str(key: string, max: number): string {
    const v = this.#get(key);
    if (typeof v !== "string") this.fail(key, "not a string");
    if (v.length > max) this.fail(key, `longer than ${max}`);
    return v;
  }

  /** A string or null. */
  optStr(key: string, max: number): string | undefined {
    return this.#get(key) === null ? undefined : this.str(key, max);
  }

  /** Bytes: exactly `len` long, or at most `len.max`. */
  bytes(key: string, len: number | { max: number }): Uint8Array {
    const v = this.#get(key);
    if (!(v instanceof Uint8Array)) this.fail(key, "not bytes");
    if (typeof len === "number" && v.length !== len) {
      this.fail(key, `${v.length} bytes, not ${len}`);
    }
    if (typeof len === "object" && v.length > len.max) this.fail(key, `more than ${len.max} bytes`);
    return v;
  }

  /** Any value, unchecked (for a part another reader checks). */
  any(key: string): RecordValue {
    return this.#get(key);
  }

  /** A nested record. */
  rec(key: string): RecordReader {
    return new RecordReader(this.#get(key), `${this.path}.${key}`);
  }

  /** A nested record or null. */
  optRec(key: string): RecordReader | undefined {
    return this.#get(key) === null ? undefined : this.rec(key);
  }

  /** An array of at most `max` items (exactly `max` when `exact`). */
  list(key: string, max: number, exact = false): readonly RecordValue[] {
    const v = this.#get(key);
    if (!Array.isArray(v)) this.fail(key, "not a list");
    if (v.length > max) this.fail(key, `${v.length} items, at most ${max}`);
    if (exact && v.length !== max) this.fail(key, `${v.length} items, not ${max}`);
    return v;
  }

  /** An array of nested records. */
  recs(key: string, max: number, exact = false): RecordReader[] {
    return this.list(key, max, exact).map((v, i) =>
      new RecordReader(v, `${this.path}.${key}[${i}]`)
    );
  }

  /** Refuses fields that were never read. Call after reading every field. */
  done(): void {
    for (const k of Object.keys(this.#o)) {
      if (!this.#seen.has(k)) this.fail(k, "unknown field");
    }
  }
}
