/**
 * virtio-blk I/O end to end: the test driver submits requests through a real vfud process, and
 * the image file on the host is checked byte for byte.
 */
import assert from "node:assert/strict";
import { randomBytes } from "../../client/mod.ts";
import { BlkFeature, BlkStatus, ReqType, SECTOR_SIZE } from "../../spec/virtio_blk.ts";
import { openBlkSession, readImage, startVfud, type Vfud } from "./helpers.ts";

const MiB = 1 << 20;

/** Writes, reads back and checks the image for a set of sector ranges. */
async function exerciseDisk(vfud: Vfud, ram: "memfd" | "array"): Promise<void> {
  await using s = await openBlkSession(vfud, { ram });
  const { driver } = s;
  const capacity = driver.capacity;
  assert.equal(capacity, 8n * 2048n, "8 MiB image = 16384 sectors");
  const expected = vfud.initialImage!.slice();
  const writes: [bigint, Uint8Array, number?][] = [
    [0n, randomBytes(512)],
    [1n, randomBytes(4096)],
    [1000n, randomBytes(64 * 1024)],
    [capacity - 1n, randomBytes(512)], // the last sector
    [2048n, randomBytes(1536 * 1024)], // > 1 MiB, 24 descriptors of 64 KiB
    [6000n, randomBytes(2 * MiB), 2 * MiB], // > 1 MiB in a single descriptor
  ];
  for (const [sector, data, seg] of writes) {
    const c = await driver.submit({ type: ReqType.OUT, sector, data, maxSegment: seg });
    assert.equal(c.status, BlkStatus.OK, `write @${sector}`);
    expected.set(data, Number(sector) * SECTOR_SIZE);
  }
  for (const [sector, data, seg] of writes) {
    const c = await driver.submit({
      type: ReqType.IN,
      sector,
      readLength: data.length,
      maxSegment: seg,
    });
    assert.equal(c.status, BlkStatus.OK, `read @${sector}`);
    assert.equal(c.usedLen, data.length + 1, "used length = data + status byte");
    assert.ok(c.data && c.data.length === data.length);
    assert.ok(equal(c.data, data), `read back @${sector} differs`);
  }
  await driver.flush();
  const file = await Deno.readFile(vfud.image);
  assert.equal(file.length, expected.length);
  assert.ok(equal(file, expected), "image file holds exactly the written bytes");
  assert.deepEqual(s.client.violations, []);
  if (ram === "memfd") {
    assert.equal(
      s.client.dmaStats.reads + s.client.dmaStats.writes,
      0,
      "zero-copy: no DMA messages",
    );
  } else {
    assert.ok(
      s.client.dmaStats.reads > 0 && s.client.dmaStats.writes > 0,
      "served through DMA messages",
    );
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("blk: I/O with memfd guest RAM (zero-copy), MSI-X completion", async () => {
  await using vfud = await startVfud();
  await exerciseDisk(vfud, "memfd");
});

Deno.test("blk: I/O with message-based guest RAM (DMA_READ/DMA_WRITE)", async () => {
  await using vfud = await startVfud();
  await exerciseDisk(vfud, "array");
});

Deno.test("blk: the server accepts every DMA_WRITE reply shape (spec, QEMU, libvfio-user)", async () => {
  await using vfud = await startVfud();
  for (const shape of ["spec", "qemu", "libvfio-user"] as const) {
    await using s = await openBlkSession(vfud, { ram: "array", client: { dmaWriteReply: shape } });
    const data = randomBytes(256 * 1024);
    await s.driver.write(512n, data);
    assert.ok(equal(await s.driver.read(512n, data.length / SECTOR_SIZE), data), shape);
    assert.ok(s.client.dmaStats.writes > 0, `${shape}: DMA_WRITE used`);
    assert.deepEqual(s.client.violations, [], shape);
  }
});

Deno.test("blk: completion found by polling the used ring (no interrupts set up)", async () => {
  await using vfud = await startVfud();
  await using s = await openBlkSession(vfud, { interrupts: "poll" });
  const data = randomBytes(32 * 1024);
  await s.driver.write(300n, data);
  assert.ok(equal(await s.driver.read(300n, 64), data));
  assert.deepEqual(s.client.violations, []);
});

Deno.test("blk: GET_ID, FLUSH, several requests per kick, bad requests", async () => {
  await using vfud = await startVfud({ serial: "vfud-serial-0001" });
  await using s = await openBlkSession(vfud);
  const { driver } = s;
  assert.equal(await driver.getId(), "vfud-serial-0001");
  await driver.flush();
  // Eight reads in the ring, one kick.
  const heads = [];
  for (let i = 0; i < 8; i++) {
    heads.push(driver.enqueue({ type: ReqType.IN, sector: BigInt(i * 8), readLength: 4096 }));
  }
  await driver.kick();
  for (let i = 0; i < 8; i++) {
    const c = await driver.wait(heads[i]);
    assert.equal(c.status, BlkStatus.OK);
    assert.ok(equal(c.data!, vfud.initialImage!.subarray(i * 4096, (i + 1) * 4096)));
  }
  // Past the end, a partial sector, an unknown type: per-request errors, the device goes on.
  const past = await driver.submit({ type: ReqType.IN, sector: driver.capacity, readLength: 512 });
  assert.equal(past.status, BlkStatus.IOERR);
  const straddle = await driver.submit({
    type: ReqType.OUT,
    sector: driver.capacity - 1n,
    data: new Uint8Array(1024),
  });
  assert.equal(straddle.status, BlkStatus.IOERR);
  const partial = await driver.submit({ type: ReqType.OUT, sector: 0n, data: new Uint8Array(100) });
  assert.equal(partial.status, BlkStatus.IOERR);
  const unknown = await driver.submit({ type: 99 });
  assert.equal(unknown.status, BlkStatus.UNSUPP);
  assert.ok(equal(await driver.read(0n, 1), vfud.initialImage!.subarray(0, 512)));
  assert.ok(equal(await Deno.readFile(vfud.image), vfud.initialImage!), "nothing was written");
  assert.deepEqual(s.client.violations, []);
});

Deno.test("blk: readonly=on refuses writes with IOERR and leaves the file unchanged", async () => {
  await using vfud = await startVfud({ readonly: true });
  await using s = await openBlkSession(vfud);
  const { driver } = s;
  assert.ok(driver.offered & (1n << BigInt(BlkFeature.RO)), "VIRTIO_BLK_F_RO offered");
  const c = await driver.submit({ type: ReqType.OUT, sector: 8n, data: randomBytes(4096) });
  assert.equal(c.status, BlkStatus.IOERR);
  const last = await driver.submit({
    type: ReqType.OUT,
    sector: driver.capacity - 1n,
    data: randomBytes(512),
  });
  assert.equal(last.status, BlkStatus.IOERR);
  // Reads and FLUSH still work.
  assert.ok(equal(await driver.read(8n, 8), vfud.initialImage!.subarray(8 * 512, 16 * 512)));
  await driver.flush();
  assert.ok(equal(await Deno.readFile(vfud.image), vfud.initialImage!), "image unchanged");
  assert.ok(
    equal(await readImage(vfud.image, 4096, 4096), vfud.initialImage!.subarray(4096, 8192)),
  );
  assert.deepEqual(s.client.violations, []);
});

Deno.test("blk: message DMA moves a many-segment request in a few messages", async () => {
  await using vfud = await startVfud();
  await using s = await openBlkSession(vfud, { ram: "array" });
  const data = randomBytes(128 * 1024);
  await s.driver.write(64n, data);
  // 32 data descriptors of 4 KiB, guest-contiguous: the descriptors come in one DMA_READ of the
  // table (not one each), the data in chunk-sized DMA messages (not one per descriptor)
  const before = { ...s.client.dmaStats };
  const c = await s.driver.submit({
    type: ReqType.IN,
    sector: 64n,
    readLength: data.length,
    maxSegment: 4096,
  });
  assert.equal(c.status, BlkStatus.OK);
  assert.ok(c.data && equal(c.data, data));
  const reads = s.client.dmaStats.reads - before.reads;
  const writes = s.client.dmaStats.writes - before.writes;
  // reads: avail ring, descriptor table, header, used_event, avail idx (a few at most);
  // writes: 128 KiB in 32 KiB chunks, status, used element, used idx, avail_event
  assert.ok(reads <= 8, `${reads} DMA_READs for one request`);
  assert.ok(writes <= 128 / 32 + 6, `${writes} DMA_WRITEs for one request`);
  assert.deepEqual(s.client.violations, []);
});
