/**
 * The shared device lifecycle suite: every device type of the device table (DEVICE_TABLE, the
 * test-only example device included), served by real vfud processes and driven by the in-repo
 * client, must
 *
 * - save, be modified, restore, and save again to identical bytes;
 * - pause with work in flight (nothing touches guest memory while paused) and resume without
 *   losing or repeating any of it;
 * - restore on a fresh process and carry on there (live migration with pre-copy);
 * - refuse fuzzed streams with an errno, left in its reset state, never crashing.
 *
 * A device type gets all of it by its DEVICE_TABLE entry; the suite fails until its kit
 * (tests/integration/kits/) says how to start it and keep it busy.
 */
import assert from "node:assert/strict";
import { DEVICE_TABLE } from "../../devices/mod.ts";
import {
  DeviceMigration,
  DeviceState,
  type GuestRam,
  MemfdRam,
  migrate,
  sleep,
  type VfioUserClient,
} from "../../client/mod.ts";
import { Errno } from "../../sys/errno.ts";
import { crc32c } from "../../migration/crc32c.ts";
import { connect, startVfud, tempDir, type Vfud } from "./helpers.ts";
import { KITS, type LifecycleKit, type Workload } from "./kits/mod.ts";

const { STOP, RUNNING, STOP_COPY, RESUMING } = DeviceState;
const RAM = 16 << 20;

/** A vfud of the kit's device with a client, guest RAM mapped and a workload. */
interface Instance extends AsyncDisposable {
  vfud: Vfud;
  client: VfioUserClient;
  mig: DeviceMigration;
}

async function serve(kit: LifecycleKit, dir: string, ram: GuestRam): Promise<Instance> {
  const vfud = await startVfud({ device: kit.device(dir) });
  const client = await connect(vfud);
  await client.mapRam(ram);
  return {
    vfud,
    client,
    mig: new DeviceMigration(client),
    async [Symbol.asyncDispose]() {
      assert.deepEqual(client.violations, []);
      await client.close();
      await vfud[Symbol.asyncDispose]();
    },
  };
}

/** The stream of a running device (→ STOP_COPY, read, → RUNNING). */
async function save(mig: DeviceMigration): Promise<Uint8Array> {
  await mig.setState(STOP_COPY);
  const s = await mig.readAll(4096);
  await mig.setState(RUNNING);
  return s;
}

/** Loads `stream` into a device (→ RESUMING, write, → STOP); the errno if it is refused. */
async function load(mig: DeviceMigration, stream: Uint8Array): Promise<number | undefined> {
  await mig.setState(RESUMING);
  await mig.writeAll(stream, 1500);
  return await mig.setState(STOP).then(
    () => undefined,
    (e) => (e as { errno: number }).errno ?? -1,
  );
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Runs `body` with a shared directory, the kit's shared resources and guest RAM. */
async function withKit(
  kit: LifecycleKit,
  body: (dir: string, shared: AsyncDisposable, ram: GuestRam) => Promise<void>,
): Promise<void> {
  await using dir = await tempDir("vfud-life-");
  await using shared = await kit.setup(dir.path);
  const ram = new MemfdRam(RAM);
  try {
    await body(dir.path, shared, ram);
  } finally {
    ram.close();
  }
}

async function withWorkload<T>(w: Workload, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    w.close();
  }
}

for (const type of DEVICE_TABLE) {
  const kit = KITS[type.name];
  const name = `device lifecycle (${type.name})`;

  Deno.test(`${name}: the device type has a kit`, () => {
    assert.ok(kit, `add a kit for ${type.name} to tests/integration/kits/mod.ts`);
  });
  if (!kit) continue;

  Deno.test(`${name}: save, modify, restore, save again gives identical bytes`, () =>
    withKit(kit, async (dir, shared, ram) => {
      await using a = await serve(kit, dir, ram);
      const w = await kit.open(a.client, ram, shared);
      await withWorkload(w, async () => {
        await w.start(6);
        await w.finish();
        const first = await save(a.mig);
        await w.start(5); // modify: the device moves on (rings, registers, statistics)
        await w.finish();
        assert.ok(!equal(await save(a.mig), first), "the state changed");
        await a.mig.setState(STOP);
        assert.equal(await load(a.mig, first), undefined, "the saved state loads");
        await a.mig.setState(STOP_COPY);
        const again = await a.mig.readAll(4096);
        assert.ok(equal(again, first), "save after restore gives the same bytes");
      });
    }));

  Deno.test(`${name}: pause with work in flight, resume: nothing lost, guest memory untouched`, () =>
    withKit(kit, async (dir, shared, ram) => {
      await using a = await serve(kit, dir, ram);
      const w = await kit.open(a.client, ram, shared);
      await withWorkload(w, async () => {
        for (let round = 0; round < 3; round++) {
          await w.start(12);
          await a.mig.setState(STOP); // right behind the notification
          const snapshot = ram.bytes.slice();
          const dma = { ...a.client.dmaStats };
          await w.duringPause?.();
          await sleep(200);
          assert.ok(equal(ram.bytes, snapshot), "a paused device touched guest memory");
          assert.deepEqual(a.client.dmaStats, dma, "a paused device sent DMA requests");
          await a.mig.setState(RUNNING);
          await w.finish();
        }
      });
    }));

  Deno.test(`${name}: restore on a fresh process carries on the work in flight`, () =>
    withKit(kit, async (dir, shared, ram) => {
      await using a = await serve(kit, dir, ram);
      const w = await kit.open(a.client, ram, shared);
      await withWorkload(w, async () => {
        await w.start(8);
        await using b = await serve(kit, dir, ram);
        const report = await migrate(a.mig, b.mig, {
          preCopyRounds: 2,
          duringPreCopy: () => w.start(8),
          beforeResume: () => w.moveTo(b.client),
        });
        assert.ok(report.preCopyBytes > 0 && report.stopCopyBytes > 0);
        assert.equal(await a.mig.state(), STOP);
        assert.equal(await b.mig.state(), RUNNING);
        await w.finish();
        await w.start(8);
        await w.finish();
      });
    }));

  Deno.test(`${name}: fuzzed streams are refused with an errno, the device left reset`, () =>
    withKit(kit, async (dir, shared, ram) => {
      await using a = await serve(kit, dir, ram);
      const w = await kit.open(a.client, ram, shared);
      const good = await withWorkload(w, async () => {
        await w.start(4);
        await w.finish();
        return await save(a.mig);
      });
      await using b = await serve(kit, dir, ram);
      const fresh = await b.client.regionRead(7, 0, 256);
      let seed = 0x5eed ^ type.name.length;
      const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
      const allowed = [Errno.EINVAL, Errno.EBADMSG, Errno.ENODEV, Errno.ENOTSUP, Errno.EFAULT];
      let refused = 0;
      for (let i = 0; i < 60; i++) {
        const kind = i % 4;
        let bad = good.slice(0, kind === 0 ? rnd(good.length) : good.length);
        if (kind >= 1) { for (let k = rnd(3); k >= 0; k--) bad[rnd(bad.length)] ^= 1 << rnd(8); }
        if (kind === 3) {
          // Valid CRC: the damage reaches the record decoder and the device's own checks.
          const v = new DataView(bad.buffer);
          v.setUint32(36, crc32c(bad.subarray(40), crc32c(bad.subarray(0, 36))), true);
        }
        if (kind === 2 && i % 8 === 2) bad = good.slice(0, good.length - 1 - rnd(8));
        await b.client.reset();
        const errno = await load(b.mig, bad);
        assert.ok(!b.vfud.exited, `vfud died on mutation ${i}:\n${b.vfud.log()}`);
        if (errno === undefined) continue; // a mutation can still be a valid state
        refused++;
        assert.ok(allowed.includes(errno as never), `mutation ${i}: errno ${errno}`);
        assert.equal(await b.mig.state(), RESUMING, `mutation ${i}: refused, still RESUMING`);
        assert.ok(equal(await b.client.regionRead(7, 0, 256), fresh), `mutation ${i}: not reset`);
      }
      assert.ok(refused >= 45, `only ${refused} of 60 damaged streams were refused`);
      await b.client.reset();
      assert.equal(await load(b.mig, good), undefined, "the undamaged stream still loads");
      await b.mig.setState(RUNNING);
    }));
}
