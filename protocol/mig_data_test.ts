import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import { fromHex } from "./hex.ts";
import { MigDataRead, MigDataWrite } from "./mig_data.ts";
import { assertErrno, assertGoldenReply } from "./testutil.ts";

Deno.test("MIG_DATA_READ: golden request, reply and end-of-stream reply", () => {
  const req = fromHex("08100000 00100000"); // argsz 0x1008, size 0x1000
  assert.deepEqual(MigDataRead.decodeRequest(req), { argsz: 0x1008, size: 0x1000 });
  assert.deepEqual(MigDataRead.encodeRequest({ argsz: 0x1008, size: 0x1000 }), req);

  const rep = fromHex("0c000000 04000000 01020304"); // argsz 12, size 4
  assertGoldenReply(MigDataRead, rep, { data: fromHex("01020304") });

  const end = fromHex("08000000 00000000");
  assert.deepEqual(MigDataRead.decodeReply(end), { data: new Uint8Array(0) });
  assert.deepEqual(MigDataRead.encodeReply({ data: new Uint8Array(0) }), end);
});

Deno.test("MIG_DATA_READ: malformed", () => {
  assertErrno(
    () => MigDataRead.decodeRequest(fromHex("08000000 04000000")),
    Errno.EINVAL,
    /argsz 8 < 8 \+ size 4/,
  );
  assertErrno(() => MigDataRead.decodeRequest(fromHex("08000000")), Errno.EINVAL);
  assertErrno(() => MigDataRead.decodeRequest(fromHex("0c000000 04000000 00")), Errno.EINVAL);
  const r = (s: string) => () => MigDataRead.decodeReply(fromHex(s));
  assertErrno(r("10000000 04000000 01020304"), Errno.EINVAL, /argsz 16 != 12/);
  assertErrno(r("0c000000 05000000 01020304"), Errno.EINVAL, /size 5/);
  assertErrno(r("0c000000 03000000 01020304"), Errno.EINVAL, /trailing/);
  assertErrno(r("0c000000"), Errno.EINVAL);
});

Deno.test("MIG_DATA_WRITE: golden request; empty reply", () => {
  const bytes = fromHex("0c000000 04000000 0a0b0c0d");
  const req = MigDataWrite.decodeRequest(bytes);
  assert.deepEqual(req, { argsz: 12, data: fromHex("0a0b0c0d") });
  assert.deepEqual(MigDataWrite.encodeRequest(req), bytes);
  assert.equal(MigDataWrite.decodeRequest(fromHex("08000000 01000000 ff")).argsz, 8);
  assert.equal(MigDataWrite.encodeReply().length, 0);
  MigDataWrite.decodeReply(new Uint8Array(0));
});

Deno.test("MIG_DATA_WRITE: malformed", () => {
  const d = (s: string) => () => MigDataWrite.decodeRequest(fromHex(s));
  assertErrno(d("04000000 04000000 0a0b0c0d"), Errno.EINVAL, /argsz 4 < 8/);
  assertErrno(d("0c000000 05000000 0a0b0c0d"), Errno.EINVAL, /size 5/);
  assertErrno(d("0c000000 03000000 0a0b0c0d"), Errno.EINVAL, /trailing/);
  assertErrno(d("0c000000"), Errno.EINVAL);
  assertErrno(() => MigDataWrite.decodeReply(new Uint8Array(1)), Errno.EINVAL);
});
