import assert from "node:assert/strict";
import { feature, FeatureBit, Status } from "../../spec/virtio.ts";
import { CC } from "../virtio/testing/driver.ts";
import { settle } from "../virtio/testing/setup.ts";
import { MemoryBackend } from "./backend.ts";
import { BlkConfigOffset } from "./config.ts";
import { BlkFeature, BlkStatus, ReqType } from "../../spec/virtio_blk.ts";
import { createVirtioBlk } from "./device.ts";
import {
  blkRig,
  blkUp,
  BUF,
  HDR,
  pattern,
  request,
  sendChain,
  STATUS,
  writeHeader,
} from "./testing.ts";

const f = feature;

Deno.test("virtio-blk PCI identity", () => {
  const { dev } = blkRig();
  assert.equal(dev.type, "virtio-blk");
  assert.equal(dev.pci.vendorId, 0x1af4);
  assert.equal(dev.pci.deviceId, 0x1042);
  assert.equal(dev.pci.subsystemVendorId, 0x1af4);
  assert.equal(dev.pci.subsystemId, 2);
  assert.equal(dev.pci.classCode, 0x010000);
  assert.equal(dev.pci.msix?.vectors, 2);
});

Deno.test("virtio-blk features and configuration structure", () => {
  const { drv } = blkRig({ queueSize: 128 });
  const features = drv.deviceFeatures();
  const expected = f(FeatureBit.VERSION_1) | f(FeatureBit.RING_INDIRECT_DESC) |
    f(FeatureBit.RING_EVENT_IDX) | f(BlkFeature.SEG_MAX) | f(BlkFeature.BLK_SIZE) |
    f(BlkFeature.FLUSH) | f(BlkFeature.DISCARD) | f(BlkFeature.WRITE_ZEROES);
  assert.equal(features, expected);
  const lo = drv.config(BlkConfigOffset.CAPACITY, 4);
  const hi = drv.config(BlkConfigOffset.CAPACITY + 4, 4);
  assert.equal(lo + hi * 2 ** 32, 2048);
  assert.equal(drv.config(BlkConfigOffset.SEG_MAX, 4), 126);
  assert.equal(drv.config(BlkConfigOffset.BLK_SIZE, 4), 512);
  assert.equal(drv.config(BlkConfigOffset.NUM_QUEUES, 2), 1);
  assert.equal(drv.config(BlkConfigOffset.SIZE_MAX, 4), 0);
  assert.equal(drv.read(CC.QUEUE_SIZE, 2), 128);
  drv.write(0x2000 + BlkConfigOffset.WRITEBACK, 1, 1); // not writable
  assert.equal(drv.config(BlkConfigOffset.WRITEBACK, 1), 0);
});

Deno.test("virtio-blk: RO feature for read-only backends, MQ for several queues", () => {
  const ro = blkRig({ readonly: true });
  assert.ok(ro.drv.deviceFeatures() & f(BlkFeature.RO));
  const mq = blkRig({ numQueues: 4 });
  assert.ok(mq.drv.deviceFeatures() & f(BlkFeature.MQ));
  assert.equal(mq.drv.config(BlkConfigOffset.NUM_QUEUES, 2), 4);
  assert.equal(mq.drv.read(CC.NUM_QUEUES, 2), 4);
  assert.equal(mq.dev.pci.msix?.vectors, 5);
});

Deno.test("virtio-blk: capacity rounds down and follows the backend", () => {
  const { drv } = blkRig({ backend: new MemoryBackend(512 * 3 + 100) });
  assert.equal(drv.config(BlkConfigOffset.CAPACITY, 4), 3);
});

Deno.test("virtio-blk: option validation", () => {
  const backend = new MemoryBackend(4096);
  assert.throws(() => createVirtioBlk({ backend, queueSize: 100 }), RangeError);
  assert.throws(() => createVirtioBlk({ backend, queueSize: 2 }), RangeError);
  assert.throws(() => createVirtioBlk({ backend, numQueues: 0 }), RangeError);
});

Deno.test("virtio-blk: OUT then IN over several data descriptors", async () => {
  const rig = blkRig();
  const q = blkUp(rig);
  const data = pattern(1536);
  rig.mem.ram.set(data, BUF);
  const out = await request(rig, q, ReqType.OUT, 4n, [
    { addr: BUF, len: 512 },
    { addr: BUF + 512, len: 1024 },
  ]);
  assert.deepEqual(out, { status: BlkStatus.OK, len: 1 });
  const backend = rig.backend as MemoryBackend;
  assert.deepEqual(backend.data.subarray(2048, 2048 + 1536), data);
  const inn = await request(rig, q, ReqType.IN, 4n, [
    { addr: BUF + 0x10000, len: 1024, write: true },
    { addr: BUF + 0x20000, len: 512, write: true },
  ]);
  assert.deepEqual(inn, { status: BlkStatus.OK, len: 1537 });
  assert.deepEqual(rig.mem.ram.subarray(BUF + 0x10000, BUF + 0x10400), data.subarray(0, 1024));
  assert.deepEqual(rig.mem.ram.subarray(BUF + 0x20000, BUF + 0x20200), data.subarray(1024));
  assert.equal(rig.mem.live, 0);
  assert.deepEqual(rig.ctx.triggers, [0, 0]);
});

Deno.test("virtio-blk: no framing assumed (header+data and data+status share descriptors)", async () => {
  const rig = blkRig();
  const q = blkUp(rig);
  const data = pattern(512, 9);
  writeHeader(rig.mem, ReqType.OUT, 1n, BUF - 16);
  rig.mem.ram.set(data, BUF);
  const out = await sendChain(rig, q, [
    { addr: BUF - 16, len: 8 },
    { addr: BUF - 8, len: 8 + 512 },
    { addr: STATUS, len: 1, write: true },
  ]);
  assert.equal(out.status, BlkStatus.OK);
  writeHeader(rig.mem, ReqType.IN, 1n);
  const inn = await sendChain(rig, q, [
    { addr: HDR, len: 16 },
    { addr: BUF + 0x1000, len: 513, write: true },
  ], BUF + 0x1000 + 512);
  assert.deepEqual(inn, { status: BlkStatus.OK, len: 513 });
  assert.deepEqual(rig.mem.ram.subarray(BUF + 0x1000, BUF + 0x1200), data);
});

Deno.test("virtio-blk: indirect descriptors", async () => {
  const rig = blkRig();
  const q = blkUp(rig);
  const data = pattern(4096, 3);
  rig.mem.ram.set(data, BUF);
  const bufs = Array.from({ length: 8 }, (_, i) => ({ addr: BUF + i * 512, len: 512 }));
  const out = await request(rig, q, ReqType.OUT, 100n, bufs, 0x9000);
  assert.equal(out.status, BlkStatus.OK);
  const inBufs = Array.from({ length: 8 }, (_, i) => ({
    addr: BUF + 0x10000 + (7 - i) * 512,
    len: 512,
    write: true,
  }));
  const inn = await request(rig, q, ReqType.IN, 100n, inBufs, 0x9000);
  assert.deepEqual(inn, { status: BlkStatus.OK, len: 4097 });
  for (let i = 0; i < 8; i++) {
    const got = rig.mem.ram.subarray(BUF + 0x10000 + (7 - i) * 512, BUF + 0x10000 + (8 - i) * 512);
    assert.deepEqual(got, data.subarray(i * 512, (i + 1) * 512));
  }
});

Deno.test("virtio-blk: FLUSH reaches the backend", async () => {
  const rig = blkRig();
  const q = blkUp(rig);
  const backend = rig.backend as MemoryBackend;
  const done = await request(rig, q, ReqType.FLUSH, 0n, []);
  assert.deepEqual(done, { status: BlkStatus.OK, len: 1 });
  assert.equal(backend.flushes, 1);
  await rig.dev.flush();
  assert.equal(backend.flushes, 2);
});

Deno.test("virtio-blk: without FLUSH negotiated writes are write-through", async () => {
  const rig = blkRig();
  const q = blkUp(rig, f(FeatureBit.VERSION_1));
  await request(rig, q, ReqType.OUT, 0n, [{ addr: BUF, len: 512 }]);
  assert.equal((rig.backend as MemoryBackend).flushes, 1);
});

Deno.test("virtio-blk: GET_ID returns the serial NUL padded to 20 bytes", async () => {
  const rig = blkRig({ serial: "vfud-0001" });
  const q = blkUp(rig);
  rig.mem.ram.fill(0xaa, BUF, BUF + 32);
  const done = await request(rig, q, ReqType.GET_ID, 0n, [{ addr: BUF, len: 20, write: true }]);
  assert.deepEqual(done, { status: BlkStatus.OK, len: 21 });
  const id = new TextDecoder().decode(rig.mem.ram.subarray(BUF, BUF + 9));
  assert.equal(id, "vfud-0001");
  assert.deepEqual([...rig.mem.ram.subarray(BUF + 9, BUF + 20)], new Array(11).fill(0));
  assert.equal(rig.mem.ram[BUF + 20], 0xaa);
  const long = blkRig({ serial: "x".repeat(30) });
  const q2 = blkUp(long);
  const short = await request(long, q2, ReqType.GET_ID, 0n, [{ addr: BUF, len: 8, write: true }]);
  assert.deepEqual(short, { status: BlkStatus.OK, len: 9 });
  const full = await request(long, q2, ReqType.GET_ID, 0n, [{ addr: BUF, len: 64, write: true }]);
  assert.equal(full.len, 21);
});

Deno.test("virtio-blk: unsupported request types answer UNSUPP", async () => {
  const rig = blkRig();
  const q = blkUp(rig);
  for (const type of [2, 3, 5, 0x80000000]) {
    const done = await request(rig, q, type, 0n, [{ addr: BUF, len: 512, write: true }]);
    assert.deepEqual(done, { status: BlkStatus.UNSUPP, len: 1 });
  }
});

Deno.test("virtio-blk: out-of-range sectors and odd lengths answer IOERR", async () => {
  const rig = blkRig();
  const q = blkUp(rig);
  const w = (len: number) => [{ addr: BUF, len, write: true }];
  assert.equal((await request(rig, q, ReqType.IN, 2047n, w(512))).status, BlkStatus.OK);
  assert.equal((await request(rig, q, ReqType.IN, 2047n, w(1024))).status, BlkStatus.IOERR);
  assert.equal((await request(rig, q, ReqType.IN, 2048n, w(512))).status, BlkStatus.IOERR);
  assert.equal((await request(rig, q, ReqType.IN, 1n << 63n, w(512))).status, BlkStatus.IOERR);
  assert.equal((await request(rig, q, ReqType.IN, 0n, w(100))).status, BlkStatus.IOERR);
  const out = await request(rig, q, ReqType.OUT, 2048n, [{ addr: BUF, len: 512 }]);
  assert.equal(out.status, BlkStatus.IOERR);
  assert.equal((await request(rig, q, ReqType.IN, 2048n, [])).status, BlkStatus.OK); // 0 bytes
});

Deno.test("virtio-blk: writes to a read-only device answer IOERR and change nothing", async () => {
  const rig = blkRig({ readonly: true });
  const q = blkUp(rig);
  rig.mem.ram.set(pattern(512), BUF);
  const out = await request(rig, q, ReqType.OUT, 0n, [{ addr: BUF, len: 512 }]);
  assert.deepEqual(out, { status: BlkStatus.IOERR, len: 1 });
  assert.ok((rig.backend as MemoryBackend).data.every((b) => b === 0));
  const inn = await request(rig, q, ReqType.IN, 0n, [{ addr: BUF, len: 512, write: true }]);
  assert.equal(inn.status, BlkStatus.OK);
});

Deno.test("virtio-blk: wrong descriptor directions answer IOERR", async () => {
  const rig = blkRig();
  const q = blkUp(rig);
  // IN whose data buffer is device-readable.
  const a = await request(rig, q, ReqType.IN, 0n, [{ addr: BUF, len: 512 }]);
  assert.equal(a.status, BlkStatus.IOERR);
  // OUT whose data buffer is device-writable.
  const b = await request(rig, q, ReqType.OUT, 0n, [{ addr: BUF, len: 512, write: true }]);
  assert.equal(b.status, BlkStatus.IOERR);
  // Header shorter than 16 bytes.
  writeHeader(rig.mem, ReqType.IN, 0n);
  const c = await sendChain(rig, q, [{ addr: HDR, len: 8 }, { addr: STATUS, len: 1, write: true }]);
  assert.equal(c.status, BlkStatus.IOERR);
  // Header in a device-writable buffer.
  const d = await sendChain(rig, q, [{ addr: HDR, len: 16, write: true }, {
    addr: STATUS,
    len: 1,
    write: true,
  }]);
  assert.equal(d.status, BlkStatus.IOERR);
  assert.equal(rig.drv.status() & Status.DEVICE_NEEDS_RESET, 0);
});

Deno.test("virtio-blk: a chain without a writable status byte needs reset", async () => {
  const rig = blkRig();
  rig.ctx.msix = true;
  const q = blkUp(rig);
  rig.drv.write(CC.CONFIG_MSIX_VECTOR, 2, 0);
  writeHeader(rig.mem, ReqType.IN, 0n);
  q.send([{ addr: HDR, len: 16 }, { addr: BUF, len: 512 }]);
  await settle(rig);
  assert.equal(q.usedIdx(), 0);
  assert.ok(rig.drv.status() & Status.DEVICE_NEEDS_RESET);
  assert.deepEqual(rig.ctx.triggers, [0]);
  assert.equal(rig.errors.length, 1);
});

Deno.test("virtio-blk: data in unmapped memory answers IOERR; unmapped status needs reset", async () => {
  const rig = blkRig();
  const q = blkUp(rig);
  rig.mem.addHole(BUF + 0x1000, 0x1000);
  const a = await request(rig, q, ReqType.IN, 0n, [
    { addr: BUF, len: 512, write: true },
    { addr: BUF + 0x1000, len: 512, write: true },
  ]);
  assert.equal(a.status, BlkStatus.IOERR);
  const b = await request(rig, q, ReqType.OUT, 0n, [{ addr: BUF + 0x1000, len: 512 }]);
  assert.equal(b.status, BlkStatus.IOERR);
  rig.mem.addHole(HDR, 16);
  const c = await request(rig, q, ReqType.IN, 0n, [{ addr: BUF, len: 512, write: true }]);
  assert.equal(c.status, BlkStatus.IOERR);
  assert.equal(rig.mem.live, 0);
  assert.equal(rig.drv.status() & Status.DEVICE_NEEDS_RESET, 0);
  rig.mem.addHole(STATUS, 1);
  writeHeader(rig.mem, ReqType.FLUSH, 0n, BUF);
  q.send([{ addr: BUF, len: 16 }, { addr: STATUS, len: 1, write: true }]);
  await settle(rig);
  assert.ok(rig.drv.status() & Status.DEVICE_NEEDS_RESET);
});

Deno.test("virtio-blk: backend failures answer IOERR", async () => {
  const backend = new MemoryBackend(1 << 20);
  backend.readv = () => {
    throw new Error("disk on fire");
  };
  backend.flush = () => Promise.reject(new Error("no sync"));
  const rig = blkRig({ backend });
  const q = blkUp(rig);
  const a = await request(rig, q, ReqType.IN, 0n, [{ addr: BUF, len: 512, write: true }]);
  assert.equal(a.status, BlkStatus.IOERR);
  const b = await request(rig, q, ReqType.FLUSH, 0n, []);
  assert.equal(b.status, BlkStatus.IOERR);
});

for (const mode of ["multi-segment", "bounce + chunked transfer"]) {
  Deno.test(`virtio-blk: round trip with ${mode} guest memory`, async () => {
    const mem = mode === "multi-segment"
      ? { segmentSize: 0x1000 }
      : { bounce: true, chunkSize: 1024, segmentSize: 0x1000 };
    const rig = blkRig({ mem });
    const q = blkUp(rig);
    const data = pattern(8192, 5);
    rig.mem.ram.set(data, BUF + 0x800);
    const out = await request(rig, q, ReqType.OUT, 10n, [{ addr: BUF + 0x800, len: 8192 }]);
    assert.equal(out.status, BlkStatus.OK);
    const inn = await request(rig, q, ReqType.IN, 10n, [
      { addr: BUF + 0x10200, len: 4096, write: true },
      { addr: BUF + 0x20e00, len: 4096, write: true },
    ]);
    assert.equal(inn.status, BlkStatus.OK);
    assert.deepEqual(rig.mem.ram.subarray(BUF + 0x10200, BUF + 0x11200), data.subarray(0, 4096));
    assert.deepEqual(rig.mem.ram.subarray(BUF + 0x20e00, BUF + 0x21e00), data.subarray(4096));
    assert.equal(rig.mem.live, 0);
  });
}

Deno.test("virtio-blk: vectored backend calls carry guest segments directly", async () => {
  const backend = new MemoryBackend(1 << 20);
  const calls: { offset: bigint; sizes: number[]; guest: boolean }[] = [];
  const rig = blkRig({ backend, mem: { segmentSize: 0x1000 } });
  const readv = backend.readv.bind(backend);
  backend.readv = (offset, segs) => {
    calls.push({
      offset,
      sizes: segs.map((s) => s.length),
      guest: segs.every((s) => s.buffer === rig.mem.ram.buffer),
    });
    return readv(offset, segs);
  };
  const q = blkUp(rig);
  await request(rig, q, ReqType.IN, 2n, [
    { addr: BUF + 0xe00, len: 1024, write: true },
    { addr: BUF + 0x8000, len: 512, write: true },
  ]);
  assert.deepEqual(calls, [
    { offset: 1024n, sizes: [512, 512], guest: true },
    { offset: 2048n, sizes: [512], guest: true },
  ]);
});

Deno.test("virtio-blk: many concurrent requests with a slow backend", async () => {
  const backend = new MemoryBackend(1 << 20);
  const writev = backend.writev.bind(backend);
  backend.writev = async (offset, segs) => {
    await new Promise((r) => setTimeout(r, Math.random() * 3));
    writev(offset, segs);
  };
  const rig = blkRig({ backend });
  const q = blkUp(rig, undefined, 64);
  const heads: number[] = [];
  for (let i = 0; i < 20; i++) {
    const hdr = 0x40000 + i * 32;
    writeHeader(rig.mem, ReqType.OUT, BigInt(i), hdr);
    rig.mem.ram.fill(i + 1, BUF + i * 512, BUF + (i + 1) * 512);
    heads.push(q.addChain([
      { addr: hdr, len: 16 },
      { addr: BUF + i * 512, len: 512 },
      { addr: hdr + 16, len: 1, write: true },
    ]));
  }
  heads.forEach((h) => q.submit(h));
  q.kick();
  await new Promise((r) => setTimeout(r, 20));
  await settle(rig);
  assert.deepEqual(q.takeUsed().map((u) => u.id).sort((a, b) => a - b), heads);
  for (let i = 0; i < 20; i++) {
    assert.equal(rig.mem.ram[0x40000 + i * 32 + 16], BlkStatus.OK);
    assert.ok(backend.data.subarray(i * 512, (i + 1) * 512).every((b) => b === i + 1));
  }
});

Deno.test("virtio-blk: SeaBIOS-style bring-up (VERSION_1 only, queue size 128, INTx)", async () => {
  const rig = blkRig();
  rig.drv.setStatus(0);
  rig.drv.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  assert.equal(rig.drv.negotiate(f(FeatureBit.VERSION_1)), true);
  const q = rig.drv.setupQueue(0, 0x1000, 128);
  assert.equal(q.size, 128);
  rig.drv.driverOk();
  const done = await request(rig, q, ReqType.IN, 0n, [{ addr: BUF, len: 512, write: true }]);
  assert.equal(done.status, BlkStatus.OK);
  assert.deepEqual(rig.ctx.triggers, [0]);
  assert.equal(rig.drv.isr(), 1);
});

Deno.test("virtio-blk: reset and close", async () => {
  const rig = blkRig();
  const q = blkUp(rig);
  await request(rig, q, ReqType.FLUSH, 0n, []);
  await rig.dev.reset();
  assert.equal(rig.drv.status(), 0);
  rig.dev.close();
  assert.equal((rig.backend as MemoryBackend).closed, true);
});
