/**
 * DMA map rules: overlaps, unmapping, device access to memory that is gone or read-only. The
 * device must fail the request (status byte) or mark itself DEVICE_NEEDS_RESET, never crash.
 */
import assert from "node:assert/strict";
import {
  ArrayRam,
  DmaMapFlags,
  Errno,
  GuestArena,
  MemfdRam,
  pollUntil,
  randomBytes,
  type VfioUserClient,
  VirtioBlkDriver,
  withTimeout,
} from "../../client/mod.ts";
import { Status } from "../../spec/virtio.ts";
import { BlkStatus, ReqType } from "../../spec/virtio_blk.ts";
import { Command } from "../../protocol/header.ts";
import { DmaMap } from "../../protocol/dma.ts";
import {
  assertErrno,
  assertErrorReply,
  assertServesFreshClient,
  connect,
  startVfud,
  type Vfud,
} from "./helpers.ts";

const MiB = 1 << 20;

/**
 * Runs `body` with a vfud and a client; afterwards the client saw no protocol violation and, its
 * session over, vfud serves the next client.
 */
async function session(body: (client: VfioUserClient, vfud: Vfud) => Promise<void>) {
  await using vfud = await startVfud();
  {
    await using client = await connect(vfud);
    await body(client, vfud);
    assert.deepEqual(client.violations, []);
  }
  await assertServesFreshClient(vfud);
}

Deno.test("dma: overlapping maps are refused with EEXIST; bad maps with an error", () =>
  session(async (client) => {
    using ram = new MemfdRam(4 * MiB);
    await client.dmaMap({ iova: 0x100000n, size: 0x100000n, fd: ram.fd });
    await assertErrno(
      client.dmaMap({ iova: 0x100000n, size: 0x100000n, fd: ram.fd }),
      Errno.EEXIST,
      "same range",
    );
    await assertErrno(
      client.dmaMap({ iova: 0x80000n, size: 0x100000n }),
      Errno.EEXIST,
      "overlaps the start",
    );
    await assertErrno(
      client.dmaMap({ iova: 0x1ff000n, size: 0x2000n }),
      Errno.EEXIST,
      "overlaps the end",
    );
    await assertErrno(client.dmaMap({ iova: 0x140000n, size: 0x1000n }), Errno.EEXIST, "inside");
    await assertErrno(client.dmaMap({ iova: 0n, size: 0x400000n }), Errno.EEXIST, "around");
    // Adjacent maps on both sides are fine.
    await client.dmaMap({ iova: 0xff000n, size: 0x1000n, fd: ram.fd });
    await client.dmaMap({ iova: 0x200000n, size: 0x1000n });
    // Malformed: size 0, unknown flag bits, a range that wraps, two fds.
    await assertErrorReply(client.dmaMap({ iova: 0x800000n, size: 0n }), "size 0");
    await assertErrorReply(client.dmaMap({ iova: 0x800000n, size: 0x1000n, flags: 4 }), "flag 4");
    await assertErrorReply(client.dmaMap({ iova: 0xffff_ffff_ffff_f000n, size: 0x2000n }), "wraps");
    using twoFds = new MemfdRam(4096);
    await assertErrorReply(
      client.request(
        Command.DMA_MAP,
        DmaMap.encodeRequest({ flags: 3, offset: 0n, address: 0x900000n, size: 0x1000n }),
        { fds: [ram.fd!, twoFds.fd!] },
      ),
      "two fds",
    );
    // The session goes on.
    assert.equal((await client.getInfo()).numRegions >= 9, true);
  }));

Deno.test("dma: a map whose fd range passes the end of the memfd cannot crash the daemon", () =>
  session(async (client, vfud) => {
    using ram = new MemfdRam(MiB);
    await client.mapRam(ram);
    using driver = await VirtioBlkDriver.create(client, { arena: new GuestArena(0n, ram.bytes) });
    // [0x100000, +1 MiB) backed by memfd bytes [0xff000, +1 MiB): all but 4 KiB lie past its end.
    const accepted = await client.dmaMap({
      iova: 0x100000n,
      size: 0x100000n,
      offset: 0xff000n,
      fd: ram.fd,
    })
      .then(() => true, () => false);
    if (accepted) {
      // The device writes GET_ID's 20 bytes into the part past the end of the memfd.
      const head = driver.enqueue({ type: ReqType.GET_ID, readLength: 20, dataAddr: 0x101000n });
      await driver.kick();
      await driver.wait(head, 5_000).catch(() => {});
    }
    const alive = await client.getInfo().then(() => true, () => false);
    if (!alive) {
      const st = await withTimeout(vfud.status, 10_000, "vfud exit").catch((e) => String(e));
      assert.fail(`vfud died: ${JSON.stringify(st)}`);
    }
    assert.ok(!accepted, "DMA_MAP of an fd range past the end of the file must be refused");
  }));

Deno.test("dma: unmapping needs an exact existing range", () =>
  session(async (client) => {
    await client.dmaMap({ iova: 0x100000n, size: 0x100000n });
    await assertErrorReply(client.dmaUnmap({ iova: 0x300000n, size: 0x1000n }), "never mapped");
    await assertErrorReply(client.dmaUnmap({ iova: 0x100000n, size: 0x1000n }), "part of a map");
    await assertErrorReply(
      client.dmaUnmap({ iova: 0x100000n, size: 0x100000n, flags: 1 }),
      "old dirty-bitmap flag",
    );
    await assertErrorReply(
      client.dmaUnmap({ iova: 0x100000n, size: 0x100000n, argsz: 8 }),
      "argsz < 24",
    );
    const e = await client.dmaUnmap({ iova: 0x100000n, size: 0x100000n });
    assert.deepEqual(
      [e.address, e.size, e.flags],
      [0x100000n, 0x100000n, 0],
      "reply echoes the entry",
    );
    await assertErrorReply(
      client.dmaUnmap({ iova: 0x100000n, size: 0x100000n }),
      "already unmapped",
    );
    // The range is free again.
    await client.dmaMap({ iova: 0x100000n, size: 0x100000n });
    // DMA_UNMAP ALL (flags 2, address 0, size 0) drops everything.
    await client.dmaMap({ iova: 0x400000n, size: 0x1000n });
    await client.dmaUnmap({ iova: 0n, size: 0n, flags: 2 });
    await client.dmaMap({ iova: 0x100000n, size: 0x100000n });
    await client.dmaMap({ iova: 0x400000n, size: 0x1000n });
  }));

Deno.test("dma: device access after unmap fails cleanly; the daemon and session survive", () =>
  session(async (client, vfud) => {
    using low = new MemfdRam(MiB); // rings, headers, status bytes
    using high = new MemfdRam(2 * MiB); // data
    await client.mapRam(low);
    await client.mapRam(high, 0x100000n);
    using driver = await VirtioBlkDriver.create(client, {
      arena: new GuestArena(0n, low.bytes),
      dataArena: new GuestArena(0x100000n, high.bytes),
    });
    const data = randomBytes(8192);
    await driver.write(64n, data);

    // Data buffer no longer mapped: the request fails with IOERR, the queue keeps working.
    await client.dmaUnmap({ iova: 0x100000n, size: BigInt(high.size) });
    const gone = await driver.submit({ type: ReqType.IN, sector: 64n, readLength: 8192 });
    assert.equal(gone.status, BlkStatus.IOERR, "read into unmapped memory");
    const gone2 = await driver.submit({ type: ReqType.OUT, sector: 64n, data: randomBytes(4096) });
    assert.equal(gone2.status, BlkStatus.IOERR, "write from unmapped memory");
    // Data in the still-mapped low memory works.
    const ok = await driver.submit({
      type: ReqType.IN,
      sector: 64n,
      readLength: 8192,
      dataAddr: 0x80000n,
    });
    assert.equal(ok.status, BlkStatus.OK);
    assert.deepEqual(ok.data, data, "the failed write did not reach the disk");

    // The rings themselves unmapped: the device cannot complete anything and needs a reset.
    await client.dmaUnmap({ iova: 0n, size: BigInt(low.size) });
    driver.enqueue({ type: ReqType.IN, sector: 0n, readLength: 512 });
    await driver.kick();
    await pollUntil(
      async () => ((await driver.deviceStatus()) & Status.DEVICE_NEEDS_RESET ? true : undefined),
      "DEVICE_NEEDS_RESET",
    );
    assert.ok((await client.getInfo()).numRegions >= 9, "session still served");
    assert.ok(!vfud.exited, "daemon alive");

    // Recovery in the same session: map again, reset the device, start over.
    driver.close();
    await client.mapRam(low);
    using again = await VirtioBlkDriver.create(client, { arena: new GuestArena(0n, low.bytes) });
    assert.deepEqual(await again.read(64n, 16), data);
  }));

Deno.test("dma: device writes into a read-only map fail the request, no crash", () =>
  session(async (client, vfud) => {
    using ram = new MemfdRam(MiB);
    using ro = new MemfdRam(MiB);
    using roMsg = new ArrayRam(MiB);
    await client.mapRam(ram);
    await client.mapRam(ro, 0x100000n, { flags: DmaMapFlags.READ });
    await client.mapRam(roMsg, 0x200000n, { flags: DmaMapFlags.READ });
    using driver = await VirtioBlkDriver.create(client, { arena: new GuestArena(0n, ram.bytes) });
    ro.bytes.fill(0xaa, 0, 4096);
    roMsg.bytes.fill(0xbb, 0, 4096);
    // IN = the device writes guest memory: refused for read-only maps (mmapped or not).
    for (const dataAddr of [0x100000n, 0x200000n]) {
      const r = await driver.submit({ type: ReqType.IN, sector: 0n, readLength: 4096, dataAddr });
      assert.equal(
        r.status,
        BlkStatus.IOERR,
        `read into the read-only map at 0x${dataAddr.toString(16)}`,
      );
    }
    assert.ok(ro.bytes.subarray(0, 4096).every((b) => b === 0xaa), "read-only memory untouched");
    assert.ok(roMsg.bytes.subarray(0, 4096).every((b) => b === 0xbb));
    // OUT = the device reads guest memory: allowed from a read-only map.
    const w = await driver.submit({
      type: ReqType.OUT,
      sector: 8n,
      data: new Uint8Array(4096),
      dataAddr: 0x100000n,
    });
    assert.equal(w.status, BlkStatus.OK);
    assert.ok((await driver.read(8n, 8)).every((b) => b === 0xaa));
    assert.ok(!vfud.exited, "daemon alive");
  }));
