/**
 * A migration pause never waits for the client: a VMM answers vfud's DMA requests from the loop
 * that waits for the MIG_DEVICE_STATE reply, so a STOP that waited for a DMA reply would stall
 * both. Requests whose guest memory access waits for the client are captured instead (part of
 * the saved state) and run again when the device runs, on the same vfud or on the destination;
 * the guest sees each complete once, with the right data.
 */
import assert from "node:assert/strict";
import {
  ArrayRam,
  DeviceMigration,
  DeviceState,
  GuestArena,
  pollUntil,
  randomBytes,
  type VfioUserClient,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { Command } from "../../protocol/header.ts";
import { BlkStatus, ReqType } from "../../spec/virtio_blk.ts";
import { connect, startVfud } from "./helpers.ts";

const MiB = 1 << 20;

for (const held of ["DMA_READ", "DMA_WRITE"] as const) {
  for (const where of ["the same vfud", "the destination"] as const) {
    Deno.test(`migration capture: STOP answered while a ${held} waits; the request runs again on ${where}`, async () => {
      await using a = await startVfud();
      await using b = await startVfud({ image: a.image });
      const ram = new ArrayRam(4 * MiB); // private guest RAM: every access is a DMA message
      const ca = await connect(a, { timeoutMs: 10_000 });
      let cb: VfioUserClient | undefined;
      const drv = await (async () => {
        await ca.mapRam(ram);
        return VirtioBlkDriver.create(ca, { arena: new GuestArena(0n, ram.bytes) });
      })();
      try {
        const data = randomBytes(8192);
        await drv.write(40n, data); // the whole path works; the data to read back
        ca.serveDma = false;
        const head = drv.enqueue({ type: ReqType.IN, sector: 40n, readLength: 8192 });
        await drv.kick();
        const cmd = held === "DMA_READ" ? Command.DMA_READ : Command.DMA_WRITE;
        for (;;) {
          await pollUntil(() => (ca.heldDma().length > 0 ? true : undefined), `a ${held}`);
          if (ca.heldDma().some((m) => m.header.cmd === cmd)) break;
          ca.serveHeldDma(); // the ones before it (ring, descriptors, header)
        }
        const src = new DeviceMigration(ca);
        // vfud waits for our answer now; the pause must not.
        await src.setState(DeviceState.STOP, { timeoutMs: 3_000 });
        if (where === "the same vfud") {
          ca.serveDma = true;
          ca.serveHeldDma(); // late answers: dropped
          await src.setState(DeviceState.RUNNING);
        } else {
          await src.setState(DeviceState.STOP_COPY);
          const stream = await src.readAll();
          cb = await connect(b);
          await cb.mapRam(ram);
          const dst = new DeviceMigration(cb);
          await dst.setState(DeviceState.RESUMING);
          await dst.writeAll(stream);
          await dst.setState(DeviceState.STOP);
          await drv.moveTo(cb);
          await dst.setState(DeviceState.RUNNING);
          ca.serveDma = true;
          ca.serveHeldDma(); // the source drops them: it is stopped for good
        }
        const c = await drv.wait(head);
        assert.equal(c.status, BlkStatus.OK, "the captured request completed, not failed");
        assert.equal(c.usedLen, 8192 + 1);
        assert.deepEqual(c.data, data);
        assert.equal(drv.inFlight, 0);
        // The queue goes on.
        assert.deepEqual(await drv.read(40n, 16), data);
        assert.deepEqual(ca.violations, []);
        assert.ok(!a.exited && !b.exited);
      } finally {
        drv.close();
        await ca.close();
        await cb?.close();
      }
    });
  }
}
