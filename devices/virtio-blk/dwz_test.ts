import assert from "node:assert/strict";
import { feature, FeatureBit } from "../../spec/virtio.ts";
import { MemoryBackend } from "./backend.ts";
import { BlkConfigOffset } from "./config.ts";
import { BlkFeature, BlkStatus, DWZ_FLAG_UNMAP, ReqType } from "../../spec/virtio_blk.ts";
import { blkRig, blkUp, BUF, request } from "./testing.ts";

/** Writes DISCARD/WRITE_ZEROES segments {sector, sectors, flags} at BUF. */
function segments(rig: ReturnType<typeof blkRig>, segs: [bigint, number, number][]): number {
  const v = new DataView(rig.mem.ram.buffer, BUF, segs.length * 16);
  segs.forEach(([sector, n, flags], i) => {
    v.setBigUint64(i * 16, sector, true);
    v.setUint32(i * 16 + 8, n, true);
    v.setUint32(i * 16 + 12, flags, true);
  });
  return segs.length * 16;
}

function filled(size: number): MemoryBackend {
  return new MemoryBackend(new Uint8Array(size).fill(0xee));
}

Deno.test("virtio-blk: DISCARD and WRITE_ZEROES offered with their limits", () => {
  const { drv } = blkRig();
  const f = drv.deviceFeatures();
  assert.ok(f & feature(BlkFeature.DISCARD));
  assert.ok(f & feature(BlkFeature.WRITE_ZEROES));
  assert.equal(drv.config(BlkConfigOffset.MAX_DISCARD_SECTORS, 4), (1 << 30) / 512);
  assert.equal(drv.config(BlkConfigOffset.MAX_DISCARD_SEG, 4), 32);
  assert.equal(drv.config(BlkConfigOffset.DISCARD_SECTOR_ALIGNMENT, 4), 1);
  assert.equal(drv.config(BlkConfigOffset.MAX_WRITE_ZEROES_SECTORS, 4), (1 << 30) / 512);
  assert.equal(drv.config(BlkConfigOffset.MAX_WRITE_ZEROES_SEG, 4), 32);
  assert.equal(drv.config(BlkConfigOffset.WRITE_ZEROES_MAY_UNMAP, 1), 1);
  // turned off, or a read-only disk: not offered
  const off = blkRig({ discard: false, writeZeroes: false }).drv.deviceFeatures();
  assert.equal(off & (feature(BlkFeature.DISCARD) | feature(BlkFeature.WRITE_ZEROES)), 0n);
  const ro = blkRig({ readonly: true }).drv.deviceFeatures();
  assert.equal(ro & (feature(BlkFeature.DISCARD) | feature(BlkFeature.WRITE_ZEROES)), 0n);
  // write-zeroes without discard may not deallocate
  const noUnmap = blkRig({ discard: false }).drv;
  assert.equal(noUnmap.config(BlkConfigOffset.WRITE_ZEROES_MAY_UNMAP, 1), 0);
});

Deno.test("virtio-blk: DISCARD and WRITE_ZEROES zero their ranges, several segments each", async () => {
  const backend = filled(1 << 20);
  const rig = blkRig({ backend });
  const q = blkUp(rig);
  let len = segments(rig, [[2n, 2, 0], [10n, 1, 0]]);
  let r = await request(rig, q, ReqType.DISCARD, 0n, [{ addr: BUF, len }]);
  assert.deepEqual(r, { status: BlkStatus.OK, len: 1 });
  len = segments(rig, [[20n, 3, 0], [30n, 1, DWZ_FLAG_UNMAP]]);
  r = await request(rig, q, ReqType.WRITE_ZEROES, 0n, [{ addr: BUF, len }]);
  assert.equal(r.status, BlkStatus.OK);
  const zero = (from: number, n: number) =>
    backend.data.subarray(from * 512, (from + n) * 512).every((b) => b === 0);
  const kept = (from: number, n: number) =>
    backend.data.subarray(from * 512, (from + n) * 512).every((b) => b === 0xee);
  assert.ok(zero(2, 2) && zero(10, 1) && zero(20, 3) && zero(30, 1));
  assert.ok(kept(0, 2) && kept(4, 6) && kept(11, 9) && kept(23, 7) && kept(31, 100));
});

Deno.test("virtio-blk: DISCARD/WRITE_ZEROES refusals (§5.2.6.2)", async () => {
  const backend = filled(1 << 20); // 2048 sectors
  const rig = blkRig({ backend });
  const q = blkUp(rig);
  const send = (type: number, segs: [bigint, number, number][]) =>
    request(rig, q, type, 0n, [{ addr: BUF, len: segments(rig, segs) }]);
  const { IOERR, UNSUPP } = BlkStatus;
  // unmap on a DISCARD, and unknown flags: UNSUPP
  assert.equal((await send(ReqType.DISCARD, [[0n, 1, DWZ_FLAG_UNMAP]])).status, UNSUPP);
  assert.equal((await send(ReqType.WRITE_ZEROES, [[0n, 1, 2]])).status, UNSUPP);
  // past the end, sector count at the limit + 1, more segments than allowed
  assert.equal((await send(ReqType.DISCARD, [[2047n, 2, 0]])).status, IOERR);
  assert.equal((await send(ReqType.DISCARD, [[2047n, 1, 0]])).status, BlkStatus.OK);
  assert.equal((await send(ReqType.WRITE_ZEROES, [[0n, (1 << 30) / 512 + 1, 0]])).status, IOERR);
  const many: [bigint, number, number][] = Array.from({ length: 33 }, (_, i) => [BigInt(i), 1, 0]);
  assert.equal((await send(ReqType.DISCARD, many)).status, UNSUPP);
  // a segment list that is not whole segments
  const odd = await request(rig, q, ReqType.DISCARD, 0n, [{ addr: BUF, len: 12 }]);
  assert.equal(odd.status, IOERR);
  assert.ok(backend.data.subarray(0, 2047 * 512).every((b) => b === 0xee), "nothing changed");
  // not negotiated: UNSUPP
  const rig2 = blkRig({ backend: filled(1 << 20) });
  const q2 = blkUp(rig2, feature(FeatureBit.VERSION_1) | feature(BlkFeature.FLUSH));
  const r = await request(rig2, q2, ReqType.DISCARD, 0n, [{
    addr: BUF,
    len: segments(rig2, [[0n, 1, 0]]),
  }]);
  assert.equal(r.status, UNSUPP);
});
