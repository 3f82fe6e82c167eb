import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import { fromHex } from "./hex.ts";
import {
  DeviceGetRegionIoFds,
  IoEventFdFlags,
  IoFdType,
  IoRegionFdFlags,
} from "./region_io_fds.ts";
import { assertErrno, patcher } from "./testutil.ts";

Deno.test("GET_REGION_IO_FDS: golden request", () => {
  const bytes = fromHex("00010000 00000000 02000000 00000000"); // argsz 256, index 2
  const req = DeviceGetRegionIoFds.decodeRequest(bytes);
  assert.deepEqual(req, { argsz: 256, index: 2 });
  assert.deepEqual(DeviceGetRegionIoFds.encodeRequest(req), bytes);
});

Deno.test("GET_REGION_IO_FDS: malformed requests", () => {
  const d = (s: string) => () => DeviceGetRegionIoFds.decodeRequest(fromHex(s));
  assertErrno(d("00010000 01000000 02000000 00000000"), Errno.EINVAL, /flags/);
  assertErrno(d("00010000 00000000 02000000 01000000"), Errno.EINVAL, /count/);
  assertErrno(d("08000000 00000000 02000000 00000000"), Errno.EINVAL, /argsz 8 < 16/);
  assertErrno(d("00010000 00000000 02000000"), Errno.EINVAL);
});

const REPLY = fromHex(`
  60000000 00000000 02000000 02000000  # argsz 96, flags 0, index 2, count 2
  0030000000000000 0400000000000000    # ioeventfd: offset 0x3000, size 4
  00000000 00000000 01000000 00000000  #   fd_index 0, IOEVENTFD, DATAMATCH, pad
  0100000000000000                     #   datamatch 1
  0040000000000000 0000000000000000    # ioregionfd: offset 0x4000, size 0
  01000000 01000000 02000000 00000000  #   fd_index 1, IOREGIONFD, POSTED_WRITES, pad
  efbeadde00000000                     #   user_data 0xdeadbeef`);

const INFO = {
  index: 2,
  subRegions: [
    {
      offset: 0x3000n,
      size: 4n,
      fdIndex: 0,
      type: IoFdType.IOEVENTFD,
      flags: IoEventFdFlags.DATAMATCH,
      datamatch: 1n,
    },
    {
      offset: 0x4000n,
      size: 0n,
      fdIndex: 1,
      type: IoFdType.IOREGIONFD,
      flags: IoRegionFdFlags.POSTED_WRITES,
      datamatch: 0xdeadbeefn,
    },
  ],
};

Deno.test("GET_REGION_IO_FDS: golden reply with an ioeventfd and an ioregionfd", () => {
  assert.deepEqual(DeviceGetRegionIoFds.encodeReply(INFO, 96), REPLY);
  assert.deepEqual(DeviceGetRegionIoFds.decodeReply(REPLY), { ...INFO, argsz: 96, count: 2 });
});

Deno.test("GET_REGION_IO_FDS: cut reply carries argsz and count, no entries", () => {
  const cut = fromHex("60000000 00000000 02000000 02000000");
  assert.equal(DeviceGetRegionIoFds.replyFits(INFO, 95), false);
  assert.equal(DeviceGetRegionIoFds.replySize(INFO), 96);
  assert.deepEqual(DeviceGetRegionIoFds.encodeReply(INFO, 16), cut);
  assert.deepEqual(DeviceGetRegionIoFds.decodeReply(cut), {
    argsz: 96,
    index: 2,
    count: 2,
    subRegions: [],
  });
  const none = fromHex("10000000 00000000 05000000 00000000");
  assert.deepEqual(DeviceGetRegionIoFds.encodeReply({ index: 5, subRegions: [] }, 16), none);
  assert.deepEqual(DeviceGetRegionIoFds.decodeReply(none).subRegions, []);
});

Deno.test("GET_REGION_IO_FDS: malformed replies", () => {
  const patched = patcher(REPLY);
  const d = (p: Uint8Array) => () => DeviceGetRegionIoFds.decodeReply(p);
  assertErrno(d(patched(0, "58000000")), Errno.EINVAL, /argsz 88 != 96/);
  assertErrno(d(patched(12, "03000000")), Errno.EINVAL, /!= 136/);
  assertErrno(d(patched(4, "01000000")), Errno.EINVAL, /flags/);
  assertErrno(d(patched(36, "02000000")), Errno.EINVAL, /unknown type 2/);
  assertErrno(d(patched(40, "04000000")), Errno.EINVAL, /ioeventfd flags/); // DEASSIGN
  assertErrno(d(patched(80, "04000000")), Errno.EINVAL, /ioregionfd flags/);
  assertErrno(d(patched(44, "01000000")), Errno.EINVAL, /padding/);
  assertErrno(d(REPLY.subarray(0, 56)), Errno.EINVAL, /cut reply/);
  assertErrno(d(new Uint8Array([...REPLY, 0])), Errno.EINVAL, /trailing/);
  assertErrno(d(REPLY.subarray(0, 12)), Errno.EINVAL);
});
