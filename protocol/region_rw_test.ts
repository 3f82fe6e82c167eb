import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import { Command, Flags } from "./header.ts";
import { fromHex } from "./hex.ts";
import { encodeCommand, splitMessage } from "./message.ts";
import { RegionRead, RegionWrite, RegionWriteMulti } from "./region_rw.ts";
import { assertErrno, assertGoldenCommand, assertGoldenReply, patcher } from "./testutil.ts";

// QEMU's first config-space read (sample id 12): 256 bytes at 0 of region 7.
const QEMU_READ = fromHex(`
  0c00 0900 20000000 00000000 00000000  # header: id 12, REGION_READ, size 32
  0000000000000000 07000000 00010000    # offset 0, region 7, count 256`);

Deno.test("REGION_READ: QEMU's request, golden whole message", () => {
  assertGoldenCommand(RegionRead, QEMU_READ, { offset: 0n, region: 7, count: 256 });
});

Deno.test("REGION_READ: golden reply (ROM BAR read at 0x30)", () => {
  const bytes = fromHex("3000000000000000 07000000 04000000 00000000");
  assertGoldenReply(RegionRead, bytes, { offset: 0x30n, region: 7, data: fromHex("00000000") });
});

Deno.test("REGION_READ: malformed", () => {
  assertErrno(() => RegionRead.decodeRequest(new Uint8Array(15)), Errno.EINVAL);
  assertErrno(() => RegionRead.decodeRequest(new Uint8Array(17)), Errno.EINVAL, /trailing/);
  assertErrno(
    () => RegionRead.decodeRequest(fromHex("fdffffffffffffff 00000000 04000000")),
    Errno.EINVAL,
    /wraps/,
  );
  const r = (s: string) => () => RegionRead.decodeReply(fromHex(s));
  assertErrno(r("3000000000000000 07000000 04000000 000000"), Errno.EINVAL, /count 4/);
  assertErrno(r("3000000000000000 07000000 02000000 00000000"), Errno.EINVAL, /trailing/);
  assertErrno(r("3000000000000000 07000000"), Errno.EINVAL);
});

// QEMU's ROM BAR sizing write (sample id 14): 4 bytes 00f8ffff at 0x30 of region 7.
const QEMU_WRITE = fromHex(`
  0e00 0a00 24000000 00000000 00000000  # header: id 14, REGION_WRITE, size 36
  3000000000000000 07000000 04000000    # offset 0x30, region 7, count 4
  00f8ffff                              # data`);

Deno.test("REGION_WRITE: QEMU's request, golden whole message; posted variant", () => {
  const data = fromHex("00f8ffff");
  const req = assertGoldenCommand(RegionWrite, QEMU_WRITE, { offset: 0x30n, region: 7, data });
  const posted = encodeCommand(14, Command.REGION_WRITE, RegionWrite.encodeRequest(req), true);
  assert.equal(splitMessage(posted).header.flags, Flags.NO_REPLY);
});

Deno.test("REGION_WRITE: golden reply", () => {
  const bytes = fromHex("3000000000000000 07000000 04000000");
  assertGoldenReply(RegionWrite, bytes, { offset: 0x30n, region: 7, count: 4 });
});

Deno.test("REGION_WRITE: malformed", () => {
  const w = (s: string) => () => RegionWrite.decodeRequest(fromHex(s));
  assertErrno(w("3000000000000000 07000000 04000000 00f8ff"), Errno.EINVAL, /3 bytes|< 20/);
  assertErrno(w("3000000000000000 07000000 02000000 00f8ffff"), Errno.EINVAL, /trailing/);
  assertErrno(w("3000000000000000 07000000 ffffffff"), Errno.EINVAL);
  assertErrno(w("30000000000000 07000000"), Errno.EINVAL);
  assertErrno(
    () => RegionWrite.decodeReply(fromHex("3000000000000000 07000000 04000000 00")),
    Errno.EINVAL,
    /trailing/,
  );
});

const MULTI = fromHex(`
  0200000000000000                                      # wr_cnt 2
  0010000000000000 00000000 04000000 1122334400000000   # BAR0 @0x1000: 4 bytes
  1000000000000000 02000000 02000000 aabb000000000000   # BAR2 @0x10: 2 bytes`);

Deno.test("REGION_WRITE_MULTI: golden request and reply", () => {
  const writes = RegionWriteMulti.decodeRequest(MULTI);
  assert.deepEqual(writes, [
    { offset: 0x1000n, region: 0, data: fromHex("11223344") },
    { offset: 0x10n, region: 2, data: fromHex("aabb") },
  ]);
  assert.deepEqual(RegionWriteMulti.encodeRequest(writes), MULTI);
  const reply = fromHex("0200000000000000");
  assert.deepEqual(RegionWriteMulti.decodeReply(reply), { wrCnt: 2 });
  assert.deepEqual(RegionWriteMulti.encodeReply({ wrCnt: 2 }), reply);
  assert.deepEqual(RegionWriteMulti.decodeRequest(new Uint8Array(8)), []);
});

Deno.test("REGION_WRITE_MULTI: malformed", () => {
  const patched = patcher(MULTI);
  const d = (p: Uint8Array) => () => RegionWriteMulti.decodeRequest(p);
  assertErrno(d(patched(0, "0300000000000000")), Errno.EINVAL, /wr_cnt 3/);
  assertErrno(d(patched(0, "0100000000000000")), Errno.EINVAL, /wr_cnt 1/);
  assertErrno(d(patched(0, "ffffffffffffffff")), Errno.EINVAL, /wr_cnt 18446744073709551615/);
  assertErrno(d(patched(20, "09000000")), Errno.EINVAL, /count 9 > 8/);
  assertErrno(d(MULTI.subarray(0, 8 + 24 + 20)), Errno.EINVAL, /not a multiple/);
  assertErrno(d(MULTI.subarray(0, 7)), Errno.EINVAL);
  assertErrno(d(patched(8, "feffffffffffffff")), Errno.EINVAL, /wraps/);
  assert.throws(
    () => RegionWriteMulti.encodeRequest([{ offset: 0n, region: 0, data: new Uint8Array(9) }]),
    RangeError,
  );
  assertErrno(() => RegionWriteMulti.decodeReply(new Uint8Array(4)), Errno.EINVAL);
  assertErrno(
    () => RegionWriteMulti.decodeReply(fromHex("0000000001000000")),
    Errno.EINVAL,
    /too large/,
  );
});
