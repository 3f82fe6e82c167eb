/**
 * Client and daemon lifecycle: reconnection with fresh DMA state and persistent device data,
 * disconnection in the middle of I/O, one client at a time, and clean shutdown on signals.
 */
import assert from "node:assert/strict";
import {
  ClientClosedError,
  Errno,
  GuestArena,
  MemfdRam,
  randomBytes,
  readProcFile,
  VfioUserClient,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { ReqType } from "../../spec/virtio_blk.ts";
import {
  assertErrno,
  assertServesFreshClient,
  connect,
  countFds,
  EVENTFD_LINK,
  openBlkSession,
  readImage,
  startVfud,
} from "./helpers.ts";

const MiB = 1 << 20;

/** Whether vfud's address space maps a memfd called `name`. */
function mapsMemfd(pid: number, name: string): boolean {
  const maps = readProcFile(`/proc/${pid}/maps`);
  assert.ok(maps !== undefined, "cannot read vfud's maps");
  return maps.includes(`/memfd:${name}`);
}

Deno.test("lifecycle: a new client gets fresh DMA state; device data persists", async () => {
  await using vfud = await startVfud();
  const eventfdsIdle = countFds(vfud.pid, EVENTFD_LINK);
  const data = randomBytes(64 * 1024);
  const name = `vfud-it-ram-${crypto.randomUUID()}`;
  {
    using ram = new MemfdRam(4 * MiB, name);
    await using client = await connect(vfud);
    await client.mapRam(ram, 0x100000n);
    await client.dmaMap({ iova: 0x10000000n, size: 0x1000n });
    const driver = await VirtioBlkDriver.create(client, {
      arena: new GuestArena(0x100000n, ram.bytes),
    });
    await driver.write(100n, data);
    assert.ok(mapsMemfd(vfud.pid, name), "vfud mmapped the guest RAM");
    assert.equal(
      countFds(vfud.pid, EVENTFD_LINK),
      eventfdsIdle + 2,
      "two MSI-X eventfds installed",
    );
    driver.close();
  }
  // Second client: nothing of the first one's DMA state is left.
  using ram = new MemfdRam(8 * MiB);
  await using client = await connect(vfud);
  assert.ok(!mapsMemfd(vfud.pid, name), "the old guest RAM was unmapped on disconnect");
  assert.equal(countFds(vfud.pid, EVENTFD_LINK), eventfdsIdle, "the old eventfds were closed");
  await assertErrno(
    client.dmaUnmap({ iova: 0x10000000n, size: 0x1000n }),
    Errno.ENOENT,
    "old map gone",
  );
  // A layout that overlaps the old maps is accepted.
  await client.mapRam(ram);
  const driver = await VirtioBlkDriver.create(client, { arena: new GuestArena(0n, ram.bytes) });
  try {
    assert.deepEqual(await driver.read(100n, 128), data, "device data persists across clients");
  } finally {
    driver.close();
  }
  assert.deepEqual(await readImage(vfud.image, 100 * 512, data.length), data);
  assert.deepEqual(client.violations, []);
});

Deno.test("lifecycle: a client that disconnects with I/O in flight", async () => {
  await using vfud = await startVfud();
  for (const ram of ["memfd", "array"] as const) {
    const s = await openBlkSession(vfud, { ram });
    try {
      for (let i = 0; i < 16; i++) {
        s.driver.enqueue({
          type: i % 2 ? ReqType.OUT : ReqType.IN,
          sector: BigInt(i * 256),
          readLength: 128 * 1024,
          data: randomBytes(128 * 1024),
        });
      }
      await s.driver.kick();
    } finally {
      await s[Symbol.asyncDispose](); // disconnects at once
    }
    await assertServesFreshClient(vfud);
  }
  // The next client can reset the device and use it.
  await using s = await openBlkSession(vfud);
  const data = randomBytes(4096);
  await s.driver.write(1n, data);
  assert.deepEqual(await s.driver.read(1n, 8), data);
});

Deno.test("lifecycle: one client at a time; the second is turned away, the first keeps working", async () => {
  await using vfud = await startVfud();
  await using first = await connect(vfud);
  const second = await VfioUserClient.connect(vfud.socketPath, { timeoutMs: 20_000 });
  try {
    const r = await second.version().then(() => "served", (e) => e);
    assert.ok(r instanceof ClientClosedError, `second client: ${r}`);
  } finally {
    await second.close();
  }
  assert.ok((await first.getInfo()).numRegions >= 9);
  assert.deepEqual(first.violations, []);
});

Deno.test("lifecycle: SIGTERM exits 0 and removes the socket", async () => {
  for (const withClient of [false, true]) {
    await using vfud = await startVfud();
    let client: VfioUserClient | undefined;
    if (withClient) {
      client = await connect(vfud);
      await client.getInfo();
    }
    const status = await vfud.stop("SIGTERM");
    assert.equal(status.code, 0, vfud.log());
    assert.equal(status.signal, null);
    await assert.rejects(Deno.lstat(vfud.socketPath), Deno.errors.NotFound, "socket removed");
    if (client) {
      assert.equal(await client.closed, undefined, "the client saw the connection end");
      await client.close();
    }
  }
});

Deno.test("lifecycle: SIGINT exits 0 too; data written before is in the image", async () => {
  await using vfud = await startVfud();
  const data = randomBytes(8192);
  {
    await using s = await openBlkSession(vfud);
    await s.driver.write(42n, data);
  }
  const status = await vfud.stop("SIGINT");
  assert.equal(status.code, 0, vfud.log());
  await assert.rejects(Deno.lstat(vfud.socketPath), Deno.errors.NotFound);
  assert.deepEqual(await readImage(vfud.image, 42 * 512, data.length), data);
});
