/**
 * Client commands are never held behind a DMA wait: QEMU answers our DMA requests from the same
 * loop that sends its commands, so a DEVICE_RESET that waited for a DMA reply would stall both
 * sides until QEMU's message timeout. Regression: DEVICE_RESET (and every command after it)
 * waited for the outstanding DMA reply.
 */
import assert from "node:assert/strict";
import {
  ArrayRam,
  GuestArena,
  pollUntil,
  virtio,
  virtioBlk,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { Command } from "../../protocol/header.ts";
import { assertServesFreshClient, connect, startVfud } from "./helpers.ts";

const MiB = 1 << 20;

for (const held of ["DMA_READ", "DMA_WRITE"] as const) {
  Deno.test(`hostile reset: DEVICE_RESET is answered while a ${held} of vfud waits for the client`, async () => {
    await using v = await startVfud();
    const ram = new ArrayRam(4 * MiB); // private guest RAM: every access is a DMA message
    {
      await using c = await connect(v, { timeoutMs: 10_000 });
      await c.dmaMap({ iova: 0n, size: BigInt(4 * MiB), backing: ram.bytes });
      const drv = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram.bytes) });
      try {
        if (held === "DMA_WRITE") {
          // Let the reads through; hold the first write (the data of the read request).
          await drv.read(0n, 1); // warm-up: the whole path works
        }
        c.serveDma = false;
        drv.enqueue({ type: virtioBlk.ReqType.IN, sector: 0n, readLength: 4096 });
        await drv.kick();
        const cmd = held === "DMA_READ" ? Command.DMA_READ : Command.DMA_WRITE;
        for (;;) {
          await pollUntil(() => (c.heldDma().length > 0 ? true : undefined), `a ${held}`);
          if (c.heldDma().some((m) => m.header.cmd === cmd)) break;
          // Serve the ones before it (reads of the ring and descriptors).
          c.serveHeldDma();
        }
        // vfud waits for our answer now. The reset and the commands after it must not.
        const size = await c.reset({ timeoutMs: 3_000 });
        assert.equal(size, 16);
        assert.ok((await c.getInfo({ timeoutMs: 3_000 })).numRegions >= 9);
        assert.equal(await drv.deviceStatus(), 0, "the function is reset");
        // The late answers are dropped quietly; the session goes on.
        c.serveDma = true;
        c.serveHeldDma();
        assert.ok((await c.getInfo()).numRegions >= 9);
        assert.equal(await drv.deviceStatus() & virtio.Status.DRIVER_OK, 0);
        assert.ok(!v.exited, v.log());
      } finally {
        drv.close();
      }
    }
    await assertServesFreshClient(v);
  });
}
