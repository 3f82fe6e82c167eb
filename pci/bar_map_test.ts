import assert from "node:assert/strict";
import { BarMap, regionInfos } from "./bar_map.ts";
import { REGION_INDEX_COUNT, RegionIndex, RegionInfoFlags } from "../protocol/region_info.ts";
import { Errno, isErrno } from "../sys/errno.ts";
import { sampleSpec } from "./testing.ts";

const isEinval = (e: unknown) => isErrno(e, Errno.EINVAL);

Deno.test("routes MSI-X table, PBA and device accesses", () => {
  const map = new BarMap(sampleSpec()); // BAR 4: table [0, 0x20), PBA [0x800, 0x808)
  assert.equal(map.barSize(4), 0x4000);
  assert.deepEqual(map.route(4, 0x0, 4), { kind: "msix-table", offset: 0 });
  assert.deepEqual(map.route(4, 0x1c, 4), { kind: "msix-table", offset: 0x1c });
  assert.deepEqual(map.route(4, 0x20, 4), { kind: "device", offset: 0x20 });
  assert.deepEqual(map.route(4, 0x800, 8), { kind: "msix-pba", offset: 0 });
  assert.deepEqual(map.route(4, 0x804, 2), { kind: "msix-pba", offset: 4 });
  assert.deepEqual(map.route(4, 0x7fc, 4), { kind: "device", offset: 0x7fc });
  assert.deepEqual(map.route(4, 0x808, 4), { kind: "device", offset: 0x808 });
  assert.deepEqual(map.route(4, 0x3ffc, 4), { kind: "device", offset: 0x3ffc });
});

Deno.test("rejects bad BAR accesses with EINVAL", () => {
  const map = new BarMap(sampleSpec());
  const bad: [number, number, number][] = [
    [4, 0x3ffc, 8], // crosses the BAR end
    [4, 0x4000, 1],
    [4, -4, 4],
    [4, 0, 0],
    [4, 0x1c, 8], // straddles the table end
    [4, 0x7fc, 8], // straddles the PBA start
    [4, 0x804, 8], // straddles the PBA end
    [5, 0, 4], // upper half of the 64-bit BAR
    [0, 0, 4], // not implemented
    [6, 0, 4],
    [-1, 0, 4],
    [4, 2 ** 53, 1],
  ];
  for (const [bar, off, len] of bad) {
    assert.throws(() => map.route(bar, off, len), isEinval, `${bar}:${off}+${len}`);
  }
});

Deno.test("BAR without MSI-X routes everything to the device", () => {
  const spec = { ...sampleSpec(), msix: undefined };
  spec.bars = [...spec.bars, { index: 0, size: 0x100, kind: "io" }];
  const map = new BarMap(spec);
  assert.deepEqual(map.route(4, 0, 4), { kind: "device", offset: 0 });
  assert.deepEqual(map.route(0, 0xff, 1), { kind: "device", offset: 0xff });
});

Deno.test("region infos for regions 0-8", () => {
  const rw = RegionInfoFlags.READ | RegionInfoFlags.WRITE;
  const infos = regionInfos(sampleSpec());
  assert.equal(infos.length, REGION_INDEX_COUNT);
  assert.deepEqual(
    infos.map((r) => [r.index, r.size, r.flags]),
    [[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0x4000, rw], [5, 0, 0], [6, 0, 0], [
      7,
      256,
      rw,
    ], [8, 0, 0]],
  );
  assert.equal(
    regionInfos({ ...sampleSpec(), configSpaceSize: 4096 })[RegionIndex.CONFIG].size,
    4096,
  );
});
