import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import { fromHex } from "./hex.ts";
import {
  DeviceGetRegionInfo,
  RegionCapId,
  RegionIndex,
  RegionInfoFlags,
  SparseMmapCap,
  TypeCap,
} from "./region_info.ts";
import { assertErrno, patcher } from "./testutil.ts";

const { READ, WRITE, MMAP, CAPS } = RegionInfoFlags;

Deno.test("GET_REGION_INFO: golden request (QEMU: argsz 32, index 7)", () => {
  const bytes = fromHex(`
    20000000 00000000 07000000 00000000  # argsz 32, flags, index 7, cap_offset
    0000000000000000 0000000000000000    # size, offset`);
  const req = DeviceGetRegionInfo.decodeRequest(bytes);
  assert.deepEqual(req, { argsz: 32, index: RegionIndex.CONFIG });
  assert.deepEqual(DeviceGetRegionInfo.encodeRequest(req), bytes);
});

Deno.test("GET_REGION_INFO: malformed requests", () => {
  const d = (s: string) => () => DeviceGetRegionInfo.decodeRequest(fromHex(s));
  const z = "0000000000000000";
  assertErrno(d(`10000000 00000000 07000000 00000000 ${z} ${z}`), Errno.EINVAL, /argsz 16 < 32/);
  assertErrno(d(`20000000 01000000 07000000 00000000 ${z} ${z}`), Errno.EINVAL, /flags/);
  assertErrno(d(`20000000 00000000 07000000 20000000 ${z} ${z}`), Errno.EINVAL, /cap_offset/);
  assertErrno(d(`20000000 00000000 07000000 00000000 01${z.slice(2)} ${z}`), Errno.EINVAL, /size/);
  assertErrno(
    d(`20000000 00000000 07000000 00000000 ${z} 01${z.slice(2)}`),
    Errno.EINVAL,
    /offset/,
  );
  assertErrno(d(`20000000 00000000 07000000 00000000 ${z}`), Errno.EINVAL, /24 bytes < 32/);
  assertErrno(d(`20000000 00000000 07000000 00000000 ${z} ${z} 00`), Errno.EINVAL, /trailing/);
});

Deno.test("GET_REGION_INFO: golden reply without capabilities (config space)", () => {
  const bytes = fromHex(`
    20000000 03000000 07000000 00000000  # argsz 32, READ|WRITE, index 7, no caps
    0001000000000000 0000000000000000    # size 0x100, offset 0`);
  const reply = DeviceGetRegionInfo.decodeReply(bytes);
  assert.deepEqual(reply, {
    argsz: 32,
    flags: READ | WRITE,
    index: 7,
    capOffset: 0,
    size: 0x100n,
    offset: 0n,
    caps: [],
  });
  assert.deepEqual(DeviceGetRegionInfo.encodeReply(reply, 32), bytes);
});

// BAR0, 32 KiB, mmap-able except its first page: one sparse area [0x1000, 0x8000).
const SPARSE_REPLY = fromHex(`
  40000000 0f000000 00000000 20000000  # argsz 64, R|W|MMAP|CAPS, index 0, cap_offset 32
  0080000000000000 0000000000000000    # size 0x8000, offset 0
  0100 0100 00000000                   # cap: id SPARSE_MMAP, version 1, next 0 (last)
  01000000 00000000                    # nr_areas 1, reserved
  0010000000000000 0070000000000000    # area: offset 0x1000, size 0x7000`);

const BAR0 = {
  flags: READ | WRITE | MMAP,
  index: 0,
  size: 0x8000n,
  offset: 0n,
  caps: [SparseMmapCap.encode([{ offset: 0x1000n, size: 0x7000n }])],
};

Deno.test("GET_REGION_INFO: golden reply with a sparse mmap capability", () => {
  assert.deepEqual(DeviceGetRegionInfo.encodeReply(BAR0, 64), SPARSE_REPLY);
  assert.equal(DeviceGetRegionInfo.replySize(BAR0), 64);
  const reply = DeviceGetRegionInfo.decodeReply(SPARSE_REPLY);
  assert.equal(reply.argsz, 64);
  assert.equal(reply.flags, READ | WRITE | MMAP | CAPS);
  assert.equal(reply.capOffset, 32);
  assert.equal(reply.caps.length, 1);
  assert.deepEqual(SparseMmapCap.decode(reply.caps[0]), [{ offset: 0x1000n, size: 0x7000n }]);
  assert.deepEqual(DeviceGetRegionInfo.encodeReply(reply, 64), SPARSE_REPLY);
});

Deno.test("GET_REGION_INFO: argsz too small for caps: needed argsz, no caps, CAPS clear", () => {
  const cut = fromHex(`
    40000000 07000000 00000000 00000000  # argsz 64 (needed), R|W|MMAP, cap_offset 0
    0080000000000000 0000000000000000`);
  assert.equal(DeviceGetRegionInfo.replyFits(BAR0, 32), false);
  assert.equal(DeviceGetRegionInfo.replyFits(BAR0, 64), true);
  assert.deepEqual(DeviceGetRegionInfo.encodeReply(BAR0, 32), cut);
  assert.deepEqual(DeviceGetRegionInfo.decodeReply(cut), {
    argsz: 64,
    flags: READ | WRITE | MMAP,
    index: 0,
    capOffset: 0,
    size: 0x8000n,
    offset: 0n,
    caps: [],
  });
});

Deno.test("GET_REGION_INFO: a chain of two capabilities, 8-byte aligned", () => {
  const info = {
    flags: READ | WRITE,
    index: 9,
    size: 0x1000n,
    offset: 0x9_0000_0000_0000n,
    caps: [
      SparseMmapCap.encode([{ offset: 0n, size: 0x1000n }]),
      TypeCap.encode({ type: 3, subtype: 1 }),
    ],
  };
  const bytes = fromHex(`
    50000000 0b000000 09000000 20000000  # argsz 80, R|W|CAPS, index 9, cap_offset 32
    0010000000000000 0000000000000900    # size 0x1000, offset 0x9_0000_0000_0000
    0100 0100 40000000                   # sparse mmap v1, next 64
    01000000 00000000 0000000000000000 0010000000000000
    0200 0100 00000000                   # type v1, last
    03000000 01000000                    # type 3, subtype 1`);
  assert.deepEqual(DeviceGetRegionInfo.encodeReply(info, 4096), bytes);
  const reply = DeviceGetRegionInfo.decodeReply(bytes);
  assert.deepEqual(reply.caps.map((c) => c.id), [RegionCapId.SPARSE_MMAP, RegionCapId.TYPE]);
  assert.deepEqual(TypeCap.decode(reply.caps[1]), { type: 3, subtype: 1 });
  assert.deepEqual(DeviceGetRegionInfo.encodeReply(reply, 80), bytes);

  const odd = { ...info, caps: [{ id: 0x99, version: 2, data: fromHex("aabbcc") }] };
  const enc = DeviceGetRegionInfo.encodeReply(odd, 4096);
  assert.equal(enc.length, 32 + 8 + 8);
  assert.deepEqual(DeviceGetRegionInfo.decodeReply(enc).caps[0].data, fromHex("aabbcc0000000000"));
});

Deno.test("GET_REGION_INFO: malformed replies", () => {
  const patched = patcher(SPARSE_REPLY);
  const d = (p: Uint8Array) => () => DeviceGetRegionInfo.decodeReply(p);
  assertErrno(d(patched(12, "10000000")), Errno.EINVAL, /inside the struct/);
  assertErrno(d(patched(12, "3c000000")), Errno.EINVAL, /past the end/);
  assertErrno(d(patched(36, "20000000")), Errno.EINVAL, /goes back/); // next -> itself
  assertErrno(d(patched(36, "48000000")), Errno.EINVAL, /past the end/);
  assertErrno(d(patched(4, "1f000000")), Errno.EINVAL, /flag bits 0x10/);
  assertErrno(d(patched(0, "10000000")), Errno.EINVAL, /argsz 16 < 32/);
  assertErrno(d(patched(0, "38000000")), Errno.EINVAL, /trailing/); // argsz < payload
  assertErrno(d(patched(4, "07000000")), Errno.EINVAL, /cap_offset without caps/);
  assertErrno(d(SPARSE_REPLY.subarray(0, 31)), Errno.EINVAL);
  // cut reply (argsz > payload) must be the bare struct
  assertErrno(d(patched(0, "80000000")), Errno.EINVAL, /cut reply/);
});

Deno.test("sparse mmap capability: malformed bodies", () => {
  const cap = (hex: string, id = 1, version = 1) => ({ id, version, data: fromHex(hex) });
  const area = "0010000000000000 0070000000000000";
  assertErrno(
    () => SparseMmapCap.decode(cap(`02000000 00000000 ${area}`)),
    Errno.EINVAL,
    /2 areas/,
  );
  assertErrno(
    () => SparseMmapCap.decode(cap(`01000000 01000000 ${area}`)),
    Errno.EINVAL,
    /reserved/,
  );
  assertErrno(() => SparseMmapCap.decode(cap(`01000000 00000000 ${area}`, 2)), Errno.EINVAL);
  assertErrno(() => SparseMmapCap.decode(cap(`01000000 00000000 ${area}`, 1, 2)), Errno.EINVAL);
  assertErrno(() => SparseMmapCap.decode(cap("0100")), Errno.EINVAL);
  assertErrno(
    () => SparseMmapCap.decode(cap("01000000 00000000 00f0ffffffffffff 0020000000000000")),
    Errno.EINVAL,
    /wraps/,
  );
  assertErrno(() => TypeCap.decode(cap("03000000", 2)), Errno.EINVAL);
});
