import assert from "node:assert/strict";
import { DmaMap, DmaMapFlags, DmaRead, DmaUnmap, DmaUnmapFlags, DmaWrite } from "./dma.ts";
import { Errno } from "./errors.ts";
import { Command } from "./header.ts";
import { fromHex } from "./hex.ts";
import { encodeCommand, splitMessage } from "./message.ts";
import { assertErrno, assertGoldenCommand, assertGoldenReply, patcher } from "./testutil.ts";

// QEMU's first DMA_MAP of the sample boot: guest RAM at 0, 512 MiB, R|W, with an fd.
const QEMU_DMA_MAP = fromHex(`
  0100 0200 30000000 00000000 00000000  # header: id 1, DMA_MAP, size 48
  20000000                              # argsz 32
  03000000                              # flags READ|WRITE
  0000000000000000                      # offset
  0000000000000000                      # address
  0000002000000000                      # size 0x20000000`);

Deno.test("DMA_MAP: QEMU's RAM map, golden whole message", () => {
  assert.equal(splitMessage(QEMU_DMA_MAP).header.cmd, Command.DMA_MAP);
  assertGoldenCommand(DmaMap, QEMU_DMA_MAP, {
    flags: DmaMapFlags.READ | DmaMapFlags.WRITE,
    offset: 0n,
    address: 0n,
    size: 0x20000000n,
  });
});

Deno.test("DMA_MAP: read-only BIOS ROM and a >2^53 address stay exact", () => {
  const rom = fromHex(
    "20000000 01000000 0000000000000000 0000fcff00000000 0000040000000000",
  );
  const req = DmaMap.decodeRequest(rom);
  assert.deepEqual(req, { flags: 1, offset: 0n, address: 0xfffc0000n, size: 0x40000n });
  assert.deepEqual(DmaMap.encodeRequest(req), rom);

  const high = fromHex(
    "20000000 02000000 0000341200000000 0000000000800fff 0010000000000000",
  );
  const hreq = DmaMap.decodeRequest(high);
  assert.equal(hreq.address, 0xff0f_8000_0000_0000n);
  assert.equal(hreq.offset, 0x1234_0000n);
  assert.deepEqual(DmaMap.encodeRequest(hreq), high);
});

Deno.test("DMA_MAP: malformed requests", () => {
  const good = QEMU_DMA_MAP.subarray(16);
  const patched = patcher(good);
  assertErrno(() => DmaMap.decodeRequest(good.subarray(0, 31)), Errno.EINVAL, /31 bytes < 32/);
  assertErrno(() => DmaMap.decodeRequest(new Uint8Array([...good, 0])), Errno.EINVAL, /trailing/);
  assertErrno(() => DmaMap.decodeRequest(patched(0, "18000000")), Errno.EINVAL, /argsz 24/);
  assertErrno(() => DmaMap.decodeRequest(patched(0, "28000000")), Errno.EINVAL, /argsz 40/);
  assertErrno(() => DmaMap.decodeRequest(patched(4, "04000000")), Errno.EINVAL, /flag bits 0x4/);
  assertErrno(() => DmaMap.decodeRequest(patched(4, "01000080")), Errno.EINVAL, /0x80000000/);
  // address 0xffff_ffff_ffff_f000 + size 0x20000000 wraps
  assertErrno(
    () => DmaMap.decodeRequest(patched(16, "00f0ffffffffffff")),
    Errno.EINVAL,
    /wraps/,
  );
});

Deno.test("DMA_MAP: empty reply", () => {
  assert.equal(DmaMap.encodeReply().length, 0);
  DmaMap.decodeReply(new Uint8Array(0));
  assertErrno(() => DmaMap.decodeReply(new Uint8Array(4)), Errno.EINVAL);
});

// QEMU's DMA_UNMAP (sample id 37): 512 MiB at 0, argsz 24, flags 0.
const UNMAP = fromHex("18000000 00000000 0000000000000000 0000002000000000");

Deno.test("DMA_UNMAP: golden request, reply echoes the entry", () => {
  const req = DmaUnmap.decodeRequest(UNMAP);
  assert.deepEqual(req, { argsz: 24, flags: 0, address: 0n, size: 0x20000000n });
  assert.deepEqual(DmaUnmap.encodeRequest(req), UNMAP);
  const reply = DmaUnmap.encodeReply(req);
  assert.deepEqual(reply, UNMAP);
  assert.deepEqual(DmaUnmap.decodeReply(reply), req);
});

Deno.test("DMA_UNMAP: QEMU's unmap-all flag is accepted", () => {
  const all = fromHex("18000000 02000000 0000000000000000 0000000000000000");
  assert.equal(DmaUnmap.decodeRequest(all).flags, DmaUnmapFlags.ALL);
});

Deno.test("DMA_UNMAP: malformed requests and replies", () => {
  const p = (s: string) => fromHex(s);
  assertErrno(() => DmaUnmap.decodeRequest(UNMAP.subarray(0, 23)), Errno.EINVAL, /< 24/);
  assertErrno(
    () => DmaUnmap.decodeRequest(p("10000000 00000000 0000000000000000 0010000000000000")),
    Errno.EINVAL,
    /argsz 16 < 24/,
  );
  // bit 0 was GET_DIRTY_BITMAP in old drafts: removed from the final spec
  assertErrno(
    () => DmaUnmap.decodeRequest(p("18000000 01000000 0000000000000000 0010000000000000")),
    Errno.EINVAL,
    /flag bits 0x1/,
  );
  assertErrno(
    () => DmaUnmap.decodeRequest(p("18000000 00000000 00f0ffffffffffff 0020000000000000")),
    Errno.EINVAL,
    /wraps/,
  );
  assertErrno(() => DmaUnmap.decodeReply(new Uint8Array(0)), Errno.EINVAL);
});

Deno.test("DMA_READ: golden request and reply; data at message offset 32", () => {
  const reqBytes = fromHex("0010000000000000 0400000000000000"); // address 0x1000, count 4
  const req = DmaRead.decodeRequest(reqBytes);
  assert.deepEqual(req, { address: 0x1000n, count: 4n });
  assert.deepEqual(DmaRead.encodeRequest(req), reqBytes);

  const replyBytes = fromHex("0010000000000000 0400000000000000 deadbeef");
  const reply = assertGoldenReply(DmaRead, replyBytes, {
    address: 0x1000n,
    data: fromHex("deadbeef"),
  });

  const msg = encodeCommand(5, Command.DMA_READ, DmaRead.encodeReply(reply));
  assert.deepEqual(msg.subarray(32), fromHex("deadbeef"));
});

Deno.test("DMA_READ: malformed", () => {
  assertErrno(() => DmaRead.decodeRequest(new Uint8Array(15)), Errno.EINVAL);
  assertErrno(() => DmaRead.decodeRequest(new Uint8Array(17)), Errno.EINVAL, /trailing/);
  assertErrno(
    () => DmaRead.decodeReply(fromHex("0010000000000000 0500000000000000 deadbeef")),
    Errno.EINVAL,
    /count 5 != 4/,
  );
  assertErrno(
    () => DmaRead.decodeReply(fromHex("0010000000000000 0300000000000000 deadbeef")),
    Errno.EINVAL,
    /count 3 != 4/,
  );
  assertErrno(
    () => DmaRead.decodeReply(fromHex("0010000000000000 0000000000000080")),
    Errno.EINVAL,
  );
  assertErrno(() => DmaRead.decodeReply(new Uint8Array(15)), Errno.EINVAL, /< 16/);
  assertErrno(
    () => DmaRead.decodeRequest(fromHex("ffffffffffffffff 0200000000000000")),
    Errno.EINVAL,
    /wraps/,
  );
});

Deno.test("DMA_WRITE: golden request; data at offset 16 of the payload", () => {
  const bytes = fromHex("0020000000000000 0300000000000000 010203");
  const req = DmaWrite.decodeRequest(bytes);
  assert.deepEqual(req, { address: 0x2000n, data: fromHex("010203") });
  assert.deepEqual(DmaWrite.encodeRequest(req), bytes);
  assertErrno(
    () => DmaWrite.decodeRequest(fromHex("0020000000000000 0400000000000000 010203")),
    Errno.EINVAL,
    /count 4 != 3/,
  );
});

Deno.test("DMA_WRITE: replies of QEMU (empty), the spec table (12) and libvfio-user (16)", () => {
  assert.equal(DmaWrite.decodeReply(new Uint8Array(0)), null);
  assert.equal(DmaWrite.encodeReply(null).length, 0);
  const r16 = fromHex("0020000000000000 0300000000000000");
  assert.deepEqual(DmaWrite.decodeReply(r16), { address: 0x2000n, count: 3n });
  assert.deepEqual(DmaWrite.encodeReply({ address: 0x2000n, count: 3n }), r16);
  assert.deepEqual(DmaWrite.decodeReply(fromHex("0020000000000000 03000000")), {
    address: 0x2000n,
    count: 3n,
  });
  assertErrno(() => DmaWrite.decodeReply(new Uint8Array(8)), Errno.EINVAL);
  assertErrno(() => DmaWrite.decodeReply(new Uint8Array(20)), Errno.EINVAL, /trailing/);
});
