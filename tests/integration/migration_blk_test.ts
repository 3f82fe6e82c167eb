/**
 * Live migration of virtio-blk between two vfud processes, with the in-repo client as the VMM:
 * guest RAM the test owns (a memfd both servers map, or plain memory served with DMA messages),
 * a driver with requests in flight, pre-copy, stop-and-copy and resume on the destination. The
 * driver is never re-initialised; every used-ring entry and every byte on disk is checked.
 */
import assert from "node:assert/strict";
import {
  ArrayRam,
  DeviceMigration,
  DeviceState,
  GuestArena,
  type GuestRam,
  MemfdRam,
  migrate,
  sleep,
  type VfioUserClient,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { connect, startVfud } from "./helpers.ts";
import { BlkWorkload } from "./kits/virtio_blk.ts";
import { SECTOR_SIZE } from "../../spec/virtio_blk.ts";

const MiB = 1 << 20;
const RAM = 16 * MiB;

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function migrateBlk(mode: "memfd" | "array"): Promise<void> {
  await using a = await startVfud({ imageSize: 8 * MiB });
  await using b = await startVfud({ image: a.image });
  const ram: GuestRam = mode === "array" ? new ArrayRam(RAM) : new MemfdRam(RAM);
  let clientA: VfioUserClient | undefined;
  let clientB: VfioUserClient | undefined;
  let driver: VirtioBlkDriver | undefined;
  try {
    clientA = await connect(a);
    await clientA.mapRam(ram);
    driver = await VirtioBlkDriver.create(clientA, {
      arena: new GuestArena(0n, ram.bytes),
      queueSize: 128,
    });
    const w = new BlkWorkload(driver, a.initialImage!.slice());
    // I/O before: on A only.
    w.mix(12);
    await driver.kick();
    await w.finish();

    // The destination: a fresh vfud, the same guest RAM mapped, nothing else set up yet.
    clientB = await connect(b);
    await clientB.mapRam(ram);
    const src = new DeviceMigration(clientA);
    const dst = new DeviceMigration(clientB);
    assert.equal(await src.flags(), 1 | 4, "STOP_COPY | PRE_COPY");
    assert.equal(await dst.state(), DeviceState.RUNNING);

    let stoppedAt = -1;
    const d = driver;
    const report = await migrate(src, dst, {
      preCopyRounds: 3,
      duringPreCopy: async (round) => {
        // The guest keeps going while the device state is copied: 8+ requests in flight, and
        // on the last round the stop comes right behind the kick.
        w.mix(round === 2 ? 10 : 4);
        await d.kick();
        if (round < 2) await sleep(20);
      },
      sourceStopped: async () => {
        assert.equal(await src.state(), DeviceState.STOP_COPY);
        stoppedAt = d.lastUsed;
        // The guest adds requests and kicks the stopped source: they must run on B.
        w.mix(9);
        await d.kick();
        const dma = { ...clientA!.dmaStats };
        const snapshot = ram.bytes.slice();
        await sleep(300);
        assert.ok(equal(ram.bytes, snapshot), "the stopped source touched guest memory");
        assert.deepEqual(clientA!.dmaStats, dma, "the stopped source sent DMA requests");
      },
      beforeResume: () => d.moveTo(clientB!),
    });
    assert.ok(report.preCopyBytes > 0, "pre-copy sent data while the device ran");
    assert.ok(report.stopCopyBytes > 0);
    assert.equal(await src.state(), DeviceState.STOP);
    assert.equal(await dst.state(), DeviceState.RUNNING);
    assert.ok(stoppedAt >= 0);

    // I/O continues on B with the same driver: what A left in the rings, then new requests.
    await w.finish();
    w.mix(16);
    await driver.kick();
    await w.finish();
    assert.ok(w.submitted >= 12 + 18 + 9 + 16);

    await driver.flush();
    const file = await Deno.readFile(a.image);
    assert.ok(equal(file, w.disk), "every byte on disk as written");
    assert.equal(await driver.read(100n, 16).then((r) => r.length), 16 * SECTOR_SIZE);
    assert.deepEqual(clientA.violations, []);
    assert.deepEqual(clientB.violations, []);
    assert.ok(!a.exited && !b.exited);
    if (mode === "array") assert.ok(clientB.dmaStats.writes > 0, "B reached RAM by DMA messages");
  } finally {
    driver?.close();
    await clientA?.close();
    await clientB?.close();
    ram.close();
  }
}

Deno.test("migration: virtio-blk moves to a second vfud mid-I/O (fd-backed guest RAM)", () =>
  migrateBlk("memfd"));

Deno.test("migration: virtio-blk moves to a second vfud mid-I/O (message DMA)", () =>
  migrateBlk("array"));
