import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import { assertErrno } from "./testutil.ts";
import {
  checkUint,
  requireExact,
  requireFlags,
  requireNoWrap,
  requireZero,
  setU64,
  struct,
  U64_MAX,
  u64ToNumber,
  viewOf,
} from "./wire.ts";

Deno.test("requireNoWrap: a range may end exactly at 2^64", () => {
  requireNoWrap(U64_MAX, 1n, "r");
  requireNoWrap(0n, U64_MAX + 1n, "r");
  assertErrno(() => requireNoWrap(U64_MAX, 2n, "r"), Errno.EINVAL, /wraps/);
});

Deno.test("requireExact tells short from trailing", () => {
  assertErrno(() => requireExact(new Uint8Array(3), 4, "X"), Errno.EINVAL, /3 bytes < 4/);
  assertErrno(() => requireExact(new Uint8Array(5), 4, "X"), Errno.EINVAL, /1 trailing/);
});

Deno.test("requireFlags / requireZero / u64ToNumber", () => {
  requireFlags(3, 3, "f");
  assertErrno(() => requireFlags(0x80000001, 1, "f"), Errno.EINVAL, /0x80000000/);
  assertErrno(() => requireZero(1n, "z"), Errno.EINVAL, /must be zero/);
  assert.equal(u64ToNumber(2n ** 53n - 1n, "n"), Number.MAX_SAFE_INTEGER);
  assertErrno(() => u64ToNumber(2n ** 53n, "n"), Errno.EINVAL);
});

Deno.test("encoder range checks throw RangeError", () => {
  assert.throws(() => checkUint(1.5, 10, "x"), RangeError);
  assert.throws(() => checkUint(11, 10, "x"), RangeError);
  const v = viewOf(new Uint8Array(8));
  assert.throws(() => setU64(v, 0, -1n, "x"), RangeError);
  assert.throws(() => setU64(v, 0, U64_MAX + 1n, "x"), RangeError);
});

Deno.test("viewOf respects the byte offset of a subarray", () => {
  const buf = new Uint8Array([9, 1, 0, 0, 0]);
  assert.equal(viewOf(buf.subarray(1)).getUint32(0, true), 1);
});

Deno.test("struct: fields packed in order, little-endian, both ways", () => {
  const S = struct({ a: "u16", b: "u16", c: "u32", d: "u64" });
  assert.equal(S.SIZE, 16);
  const bytes = S.encode({ a: 0x0201, b: 0x0403, c: 0x08070605, d: 0x100f0e0d0c0b0a09n });
  assert.deepEqual([...bytes], Array.from({ length: 16 }, (_, i) => i + 1));
  assert.deepEqual(S.read(bytes), { a: 0x0201, b: 0x0403, c: 0x08070605, d: 0x100f0e0d0c0b0a09n });
  const withTail = S.encode({ a: 1, b: 2, c: 3, d: 4n }, Uint8Array.of(0xee));
  assert.equal(withTail.length, 17);
  assert.equal(withTail[16], 0xee);
  assert.deepEqual(S.decodeHead(withTail, "S"), { a: 1, b: 2, c: 3, d: 4n });
  assertErrno(() => S.decode(withTail, "S"), Errno.EINVAL, /1 trailing/);
  assertErrno(() => S.decodeHead(bytes.subarray(0, 15), "S"), Errno.EINVAL, /15 bytes < 16/);
  assert.throws(() => S.encode({ a: 0x10000, b: 0, c: 0, d: 0n }), RangeError);
});

Deno.test("struct: arrays of entries at an offset", () => {
  const R = struct({ iova: "u64", length: "u64" });
  const out = new Uint8Array(4 + 2 * R.SIZE);
  const ranges = [{ iova: 0x1000n, length: 0x200n }, { iova: 0x3000n, length: 0x10n }];
  R.writeArray(out, ranges, 4);
  assert.deepEqual(R.readArray(out, 4, 2), ranges);
  assert.equal(viewOf(out).getBigUint64(4 + R.SIZE, true), 0x3000n);
});
