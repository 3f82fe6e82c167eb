/**
 * Core checks at their exact limits (README, "Limits"): each boundary value is accepted and
 * the next one refused with an error reply, without a resource blow-up.
 */
import assert from "node:assert/strict";
import {
  ArrayRam,
  DmaMapFlags,
  Errno,
  GuestArena,
  MemfdRam,
  virtioBlk,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { RegionRead } from "../../protocol/region_rw.ts";
import { Command } from "../../protocol/header.ts";
import { assertErrno, assertServesFreshClient, connect, startVfud } from "./helpers.ts";

const MAX_XFER = 1 << 20;

Deno.test("limits: REGION_READ at max_data_xfer_size is checked before anything is allocated", async () => {
  await using v = await startVfud();
  await using c = await connect(v);
  // The virtio BAR (region 4) is 16 KiB: a count within max_data_xfer_size fails on the region
  // bounds (EINVAL), one past it on the transfer limit (E2BIG).
  await assertErrno(c.regionRead(4, 0, MAX_XFER), Errno.EINVAL, "count = max_data_xfer_size");
  await assertErrno(c.regionRead(4, 0, MAX_XFER + 1), Errno.E2BIG, "count = limit + 1");
  // The largest count a client can write is refused the same way (before any buffer of that
  // size is made: the reply is E2BIG, not a failed allocation or a region-bounds EINVAL).
  for (let i = 0; i < 8; i++) {
    const payload = RegionRead.encodeRequest({ offset: 0n, region: 4, count: 0xffff_ffff });
    await assertErrno(c.request(Command.REGION_READ, payload), Errno.E2BIG, "count 4 GiB - 1");
  }
  // Just under the limit within the region works: the whole 16 KiB BAR.
  assert.equal((await c.regionRead(4, 0, 16384)).length, 16384);
  assert.deepEqual(c.violations, []);
});

for (const mode of ["memfd", "array"] as const) {
  Deno.test(`limits: a device write into a read-only DMA map fails the request (${mode})`, async () => {
    await using v = await startVfud();
    const rings = new MemfdRam(1 << 20);
    const data = mode === "memfd" ? new MemfdRam(1 << 20) : new ArrayRam(1 << 20);
    try {
      {
        await using c = await connect(v);
        await c.dmaMap({ iova: 0n, size: 1n << 20n, fd: rings.fd, backing: rings.bytes });
        // The data buffers' map allows reads only: a virtio-blk IN request writes there.
        await c.dmaMap({
          iova: 0x100000n,
          size: 1n << 20n,
          fd: data.fd,
          backing: data.bytes,
          flags: DmaMapFlags.READ,
        });
        const drv = await VirtioBlkDriver.create(c, {
          arena: new GuestArena(0n, rings.bytes),
          dataArena: new GuestArena(0x100000n, data.bytes),
        });
        try {
          data.bytes.fill(0x5a, 0, 4096);
          const head = drv.enqueue({ type: virtioBlk.ReqType.IN, sector: 0n, readLength: 4096 });
          await drv.kick();
          const done = await drv.wait(head);
          assert.equal(done.status, virtioBlk.BlkStatus.IOERR, "the request failed");
          assert.ok(data.bytes.subarray(0, 4096).every((b) => b === 0x5a), "nothing written");
          // No DMA_WRITE into the read-only map was even tried (the client would refuse it).
          assert.deepEqual(c.violations, []);
          // A write request (the device only reads the map) still works.
          await drv.write(8n, new Uint8Array(4096).fill(7));
        } finally {
          drv.close();
        }
      }
      await assertServesFreshClient(v);
    } finally {
      rings.close();
      data.close();
    }
  });
}
