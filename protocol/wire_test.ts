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
