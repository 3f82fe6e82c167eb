import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import {
  DeviceFeature,
  DeviceState,
  DmaLoggingControlFeature,
  DmaLoggingReportFeature,
  Feature,
  FeatureFlags,
  isKnownFeature,
  MigDeviceStateFeature,
  MigrationFeature,
  MigrationFlags,
} from "./feature.ts";
import { fromHex } from "./hex.ts";
import { assertErrno } from "./testutil.ts";

const { GET, SET, PROBE } = FeatureFlags;
const NONE = new Uint8Array(0);

Deno.test("DEVICE_FEATURE MIGRATION: golden GET request and reply", () => {
  const req = fromHex("10000000 01000100"); // argsz 16, feature 1 | GET
  const m = DeviceFeature.decodeRequest(req);
  assert.deepEqual(m, { argsz: 16, feature: Feature.MIGRATION, ops: GET, data: NONE });
  assert.deepEqual(DeviceFeature.encodeRequest(m), req);

  const rep = fromHex("10000000 01000100 0500000000000000"); // STOP_COPY|PRE_COPY
  const r = DeviceFeature.decodeReply(rep);
  assert.deepEqual(MigrationFeature.decode(r.data), {
    flags: MigrationFlags.STOP_COPY | MigrationFlags.PRE_COPY,
  });
  const data = MigrationFeature.encode({ flags: 5 });
  assert.deepEqual(DeviceFeature.encodeReply({ feature: 1, ops: GET, data }), rep);
});

Deno.test("DEVICE_FEATURE MIG_DEVICE_STATE: golden SET, reply echoes the request", () => {
  const req = fromHex("10000000 02000200 03000000 ffffffff"); // STOP_COPY, data_fd -1
  const m = DeviceFeature.decodeRequest(req);
  assert.equal(m.feature, Feature.MIG_DEVICE_STATE);
  assert.equal(m.ops, SET);
  const s = MigDeviceStateFeature.decode(m.data);
  assert.deepEqual(s, { deviceState: DeviceState.STOP_COPY, dataFd: 0xffffffff });
  assert.deepEqual(MigDeviceStateFeature.encode(s), m.data);
  assert.deepEqual(DeviceFeature.encodeReply(m), req);
  assert.deepEqual(DeviceFeature.decodeReply(req), m);
});

Deno.test("DEVICE_FEATURE DMA_LOGGING_START: golden PROBE and SET with two ranges", () => {
  const probe = fromHex("08000000 06000600"); // feature 6 | SET | PROBE
  assert.deepEqual(DeviceFeature.decodeRequest(probe), {
    argsz: 8,
    feature: Feature.DMA_LOGGING_START,
    ops: SET | PROBE,
    data: NONE,
  });
  const set = fromHex(`
    38000000 06000200                    # argsz 56, feature 6 | SET
    0010000000000000 02000000 00000000   # page_size 4096, num_ranges 2, reserved
    0000000000000000 0000010000000000    # [0, 64 KiB)
    0000100000000000 0000020000000000    # [1 MiB, +128 KiB)`);
  const m = DeviceFeature.decodeRequest(set);
  const ctl = DmaLoggingControlFeature.decode(m.data);
  assert.deepEqual(ctl, {
    pageSize: 4096n,
    ranges: [{ iova: 0n, length: 0x10000n }, { iova: 0x100000n, length: 0x20000n }],
  });
  assert.deepEqual(DmaLoggingControlFeature.encode(ctl), m.data);
  assert.deepEqual(DeviceFeature.encodeRequest(m), set);
});

Deno.test("DEVICE_FEATURE DMA_LOGGING_REPORT: golden GET request and reply with bitmap", () => {
  const head = "0000100000000000 0000010000000000 0010000000000000"; // 1 MiB, 64 KiB, 4 KiB
  const req = fromHex(`28000000 08000100 ${head}`);
  const m = DeviceFeature.decodeRequest(req);
  const r = DmaLoggingReportFeature.decodeRequest(m.data);
  assert.deepEqual(r, { iova: 0x100000n, length: 0x10000n, pageSize: 0x1000n });
  assert.deepEqual(DmaLoggingReportFeature.encodeRequest(r), m.data);
  assert.equal(DmaLoggingReportFeature.bitmapSize(r.length, r.pageSize), 8);

  const rep = fromHex(`28000000 08000100 ${head} 0500000000000000`); // pages 0 and 2 dirty
  const fr = DeviceFeature.decodeReply(rep);
  const report = DmaLoggingReportFeature.decodeReply(fr.data);
  assert.deepEqual(report.bitmap, fromHex("0500000000000000"));
  const data = DmaLoggingReportFeature.encodeReply(report);
  assert.deepEqual(DeviceFeature.encodeReply({ feature: 8, ops: GET, data }), rep);
});

Deno.test("DMA_LOGGING_REPORT: bitmap sizes", () => {
  const size = DmaLoggingReportFeature.bitmapSize;
  assert.equal(size(0n, 4096n), 0);
  assert.equal(size(1n, 4096n), 8);
  assert.equal(size(64n * 4096n, 4096n), 8);
  assert.equal(size(65n * 4096n, 4096n), 16);
  assertErrno(() => size(2n ** 40n, 1n), Errno.E2BIG);
});

Deno.test("DEVICE_FEATURE: malformed requests and replies", () => {
  const d = (s: string) => () => DeviceFeature.decodeRequest(fromHex(s));
  assertErrno(d("10000000 01000800"), Errno.EINVAL, /flag bits 0x80000/); // bit 19
  assertErrno(d("10000000 01000000"), Errno.EINVAL, /none of GET/);
  assertErrno(d("10000000 01000300"), Errno.EINVAL, /without PROBE/);
  assert.equal(DeviceFeature.decodeRequest(fromHex("08000000 01000700")).ops, GET | SET | PROBE);
  assertErrno(d("04000000 01000100"), Errno.EINVAL, /argsz 4 < 8/);
  assertErrno(d("10000000 0100"), Errno.EINVAL, /6 bytes < 8/);
  assertErrno(d("08000000 02000200 03000000 ffffffff"), Errno.EINVAL, /echoed reply/);
  assertErrno(
    () => DeviceFeature.decodeReply(fromHex("18000000 01000100 0500000000000000")),
    Errno.EINVAL,
    /8 bytes < 16|< 24/,
  );
  assert.throws(
    () => DeviceFeature.encodeRequest({ argsz: 8, feature: 0x10000, ops: GET, data: NONE }),
    RangeError,
  );
});

Deno.test("feature data: malformed", () => {
  const h = fromHex;
  assertErrno(() => MigrationFeature.decode(h("0d00000000000000")), Errno.EINVAL, /unknown bits/);
  assertErrno(() => MigrationFeature.decode(h("0100000000000080")), Errno.EINVAL, /unknown bits/);
  assertErrno(() => MigrationFeature.decode(h("0400000000000000")), Errno.EINVAL, /STOP_COPY/);
  assertErrno(() => MigrationFeature.decode(h("01000000")), Errno.EINVAL);
  assertErrno(() => MigDeviceStateFeature.decode(h("08000000 00000000")), Errno.EINVAL, /state 8/);
  assertErrno(() => MigDeviceStateFeature.decode(h("02000000")), Errno.EINVAL);
  const ctl = (s: string) => () => DmaLoggingControlFeature.decode(h(s));
  assertErrno(ctl("0010000000000000 00000000 01000000"), Errno.EINVAL, /reserved/);
  assertErrno(
    ctl("0010000000000000 02000000 00000000 0000000000000000 0000010000000000"),
    Errno.EINVAL,
    /2 ranges/,
  );
  assertErrno(
    ctl("0010000000000000 01000000 00000000 00f0ffffffffffff 0020000000000000"),
    Errno.EINVAL,
    /wraps/,
  );
  assertErrno(ctl("0010000000000000"), Errno.EINVAL);
  const rep = (s: string) => () => DmaLoggingReportFeature.decodeRequest(h(s));
  assertErrno(rep("0000000000000000 0010000000000000 0300000000000000"), Errno.EINVAL, /power/);
  assertErrno(rep("0000000000000000 0010000000000000 0000000000000000"), Errno.EINVAL, /power/);
  assertErrno(rep("00f0ffffffffffff 0020000000000000 0010000000000000"), Errno.EINVAL, /wraps/);
  assertErrno(
    () =>
      DmaLoggingReportFeature.decodeReply(
        h("0000000000000000 0000010000000000 0010000000000000 0500"),
      ),
    Errno.EINVAL,
    /bitmap/,
  );
  assert.throws(
    () =>
      DmaLoggingReportFeature.encodeReply({
        iova: 0n,
        length: 4096n,
        pageSize: 4096n,
        bitmap: new Uint8Array(4),
      }),
    RangeError,
  );
});

Deno.test("isKnownFeature", () => {
  for (const f of [1, 2, 6, 7, 8]) assert.equal(isKnownFeature(f), true);
  for (const f of [0, 3, 4, 5, 9]) assert.equal(isKnownFeature(f), false);
});
