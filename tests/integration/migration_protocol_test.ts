/**
 * Migration conformance over the wire, against a real vfud: every requested state transition
 * (valid and invalid) of the migration v2 state machine, where MIG_DATA_READ/WRITE are allowed,
 * DEVICE_FEATURE operations and probes, and streams a destination must refuse (truncated,
 * corrupt, another device type, a newer version, semantically invalid) without crashing and
 * leaving the device in its reset state.
 */
import assert from "node:assert/strict";
import {
  DeviceMigration,
  DeviceState,
  Errno,
  GuestArena,
  MemfdRam,
  probeVirtioPci,
  type VfioUserClient,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { Feature, FeatureFlags } from "../../protocol/feature.ts";
import { CommonCfg } from "../../spec/virtio.ts";
import type { RecordValue } from "../../protocol/record.ts";
import { crc32c } from "../../migration/crc32c.ts";
import { decodeStream, encodeFrame, SectionId } from "../../migration/stream.ts";
import { assertErrno, connect, startVfud, type Vfud } from "./helpers.ts";

const { STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY } = DeviceState;
const STATES = [STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY];
const NAMES: Record<number, string> = {
  0: "ERROR",
  1: "STOP",
  2: "RUNNING",
  3: "STOP_COPY",
  4: "RESUMING",
  5: "RUNNING_P2P",
  6: "PRE_COPY",
  7: "PRE_COPY_P2P",
};

/** A client with guest RAM mapped, the virtio-blk function set up, and its migration handle. */
async function setUp(v: Vfud, ram: MemfdRam) {
  const client = await connect(v);
  await client.mapRam(ram);
  const driver = await VirtioBlkDriver.create(client, { arena: new GuestArena(0n, ram.bytes) });
  await driver.write(10n, new Uint8Array(4096).fill(7));
  return { client, driver, mig: new DeviceMigration(client) };
}

/** The stream of the device behind `mig` (RUNNING -> STOP_COPY, read, back to RUNNING). */
async function saveStream(mig: DeviceMigration): Promise<Uint8Array> {
  await mig.setState(STOP_COPY);
  const s = await mig.readAll(4096);
  await mig.setState(RUNNING);
  return s;
}

Deno.test("migration protocol: every requested transition, valid and invalid", async () => {
  await using v = await startVfud();
  const ram = new MemfdRam(4 << 20);
  const { client, driver, mig } = await setUp(v, ram);
  try {
    const stream = await saveStream(mig);
    assert.equal(await mig.flags(), 1 | 4, "STOP_COPY | PRE_COPY (no P2P)");
    /** Brings the device from RUNNING (after a reset) to `s`. */
    const reach = async (s: number) => {
      await client.reset();
      assert.equal(await mig.state(), RUNNING, "DEVICE_RESET returns to RUNNING");
      await mig.setState(s);
    };
    for (const from of STATES) {
      for (const to of STATES) {
        const what = `${NAMES[from]} -> ${NAMES[to]}`;
        await reach(from);
        // Leaving RESUMING loads what was written: give it a valid stream.
        if (from === RESUMING && to !== RESUMING) await mig.writeAll(stream, 1000);
        if (from === STOP_COPY && to === PRE_COPY) {
          await assertErrno(mig.setState(to), Errno.EINVAL, what);
          assert.equal(await mig.state(), from, `${what}: refused, state unchanged`);
          continue;
        }
        await mig.setState(to);
        assert.equal(await mig.state(), to, what);
      }
      for (const bad of [0, 5, 7]) {
        await reach(from);
        await assertErrno(mig.setState(bad), Errno.EINVAL, `${NAMES[from]} -> ${NAMES[bad]}`);
        assert.equal(await mig.state(), from, "refused, state unchanged");
      }
    }
    await reach(RUNNING);
    await assertErrno(mig.setState(8), Errno.EINVAL, "no state 8");
    // The device works after all this.
    await client.reset();
    driver.close();
  } finally {
    await client.close();
    ram.close();
  }
});

Deno.test("migration protocol: data commands only in their states; feature operations", async () => {
  await using v = await startVfud();
  const ram = new MemfdRam(4 << 20);
  const { client, driver, mig } = await setUp(v, ram);
  try {
    for (const s of STATES) {
      await client.reset();
      await mig.setState(s);
      const read = mig.read(64);
      const write = mig.write(new Uint8Array(8));
      if (s === STOP_COPY || s === PRE_COPY) assert.ok((await read).length > 0, NAMES[s]);
      else await assertErrno(read, Errno.EINVAL, `MIG_DATA_READ in ${NAMES[s]}`);
      if (s === RESUMING) await write;
      else await assertErrno(write, Errno.EINVAL, `MIG_DATA_WRITE in ${NAMES[s]}`);
    }
    await client.reset();
    await mig.setState(STOP_COPY);
    await assertErrno(mig.read((1 << 20) + 1), Errno.E2BIG, "read beyond max_data_xfer_size");
    await client.reset();
    const { GET, SET, PROBE } = FeatureFlags;
    for (
      const [f, ops] of [
        [Feature.MIGRATION, GET],
        [Feature.MIG_DEVICE_STATE, GET | SET],
        [Feature.DMA_LOGGING_START, SET],
        [Feature.DMA_LOGGING_STOP, SET],
        [Feature.DMA_LOGGING_REPORT, GET],
      ]
    ) {
      const r = await mig.feature(f, PROBE | ops);
      assert.equal(r.ops, PROBE | ops, "a probe echoes the request");
      const missing = (GET | SET) & ~ops;
      if (missing) await assertErrno(mig.feature(f, PROBE | missing), Errno.EINVAL, `probe ${f}`);
    }
    await assertErrno(mig.feature(Feature.MIGRATION, SET), Errno.EINVAL, "MIGRATION has no SET");
    await assertErrno(mig.feature(3, GET), Errno.ENOTSUP, "feature 3 does not exist here");
    await assertErrno(
      mig.feature(Feature.MIGRATION, GET, undefined, { argsz: 8 }),
      Errno.EINVAL,
      "GET without room for the data",
    );
    assert.deepEqual(client.violations, []);
    driver.close();
  } finally {
    await client.close();
    ram.close();
  }
});

/** Replaces the sections of a stream and encodes it again (one FINAL frame). */
function rebuild(
  stream: Uint8Array,
  edit: (sections: Map<number, RecordValue>) => void,
  info = { deviceType: "virtio-blk", stateVersion: 1 },
): Uint8Array {
  const d = decodeStream(stream, { deviceType: info.deviceType, maxStateVersion: 1 });
  edit(d.sections);
  return encodeFrame(info, [...d.sections].map(([id, data]) => ({ id, data })), true);
}

/** The virtio record of a decoded device section, to edit. */
function virtio(sections: Map<number, RecordValue>): Record<string, RecordValue> {
  return sections.get(SectionId.DEVICE) as Record<string, RecordValue>;
}

function queue0(sections: Map<number, RecordValue>): Record<string, RecordValue> {
  return (virtio(sections).queues as Record<string, RecordValue>[])[0];
}

/** Recomputes a frame's CRC after its header was edited. */
function fixCrc(b: Uint8Array): Uint8Array {
  const v = new DataView(b.buffer, b.byteOffset);
  const len = v.getUint32(32, true);
  v.setUint32(36, crc32c(b.subarray(40, 40 + len), crc32c(b.subarray(0, 36))), true);
  return b;
}

Deno.test("migration protocol: bad streams are refused with an errno, the device left reset", async () => {
  await using a = await startVfud();
  await using b = await startVfud({ image: a.image });
  await using nic = await startVfud({ device: "e1000,netdev=stream,path={dir}/net.sock" });
  await using small = await startVfud({ imageSize: 4 << 20 });
  const ram = new MemfdRam(4 << 20);
  const src = await setUp(a, ram);
  let dst: VfioUserClient | undefined;
  let other: VfioUserClient | undefined;
  let smallClient: VfioUserClient | undefined;
  try {
    const good = await saveStream(src.mig);
    other = await connect(nic);
    const e1000Stream = await saveStream(new DeviceMigration(other));
    dst = await connect(b);
    await dst.mapRam(ram);
    const mig = new DeviceMigration(dst);
    const freshConfig = await dst.regionRead(7, 0, 256);
    const common = (await probeVirtioPci(dst)).common;
    const deviceStatus = async (c: VfioUserClient) =>
      (await c.regionRead(common.bar, common.offset + CommonCfg.DEVICE_STATUS, 1))[0];

    const refused = async (bytes: Uint8Array, errno: number, what: string, m = mig, c = dst!) => {
      await c.reset();
      await m.setState(RESUMING);
      await m.writeAll(bytes, 700);
      await assertErrno(m.setState(STOP), errno, what);
      assert.equal(await m.state(), RESUMING, `${what}: the state stays RESUMING`);
      assert.deepEqual(await c.regionRead(7, 0, 256), freshConfig, `${what}: config space reset`);
      assert.equal(await deviceStatus(c), 0, `${what}: virtio device status reset`);
    };

    for (const cut of [0, 1, 39, 40, 41, good.length >> 1, good.length - 1]) {
      await refused(good.subarray(0, cut), Errno.EINVAL, `truncated at ${cut}`);
    }
    const flipped = good.slice();
    flipped[good.length - 3] ^= 0x10;
    await refused(flipped, Errno.EBADMSG, "CRC mismatch");
    await refused(e1000Stream, Errno.ENODEV, "an e1000's state");
    const newer = good.slice();
    new DataView(newer.buffer).setUint32(12, 2, true);
    await refused(fixCrc(newer), Errno.ENOTSUP, "device state version 2");
    const future = good.slice();
    new DataView(future.buffer).setUint16(8, 2, true);
    await refused(fixCrc(future), Errno.ENOTSUP, "stream format 2");
    const twice = new Uint8Array(good.length * 2);
    twice.set(good);
    twice.set(good, good.length);
    await refused(twice, Errno.EINVAL, "data after the final frame");

    // Semantically invalid records (valid CRC): the device refuses them.
    await refused(rebuild(good, (s) => void (queue0(s).size = 3)), Errno.EINVAL, "queue size 3");
    await refused(
      rebuild(good, (s) => void (queue0(s).desc = 0x70_0000_0000n)),
      Errno.EFAULT,
      "ring outside the DMA maps",
    );
    await refused(rebuild(good, (s) => void (queue0(s).vector = 99)), Errno.EINVAL, "vector 99");
    await refused(
      rebuild(
        good,
        (s) => void (virtio(s).negotiated = (virtio(s).negotiated as bigint) | (1n << 60n)),
      ),
      Errno.EINVAL,
      "a feature never offered",
    );
    await refused(
      rebuild(good, (s) => void s.delete(SectionId.IRQ)),
      Errno.EINVAL,
      "no IRQ section",
    );
    const cfg = (s: Map<number, RecordValue>) =>
      s.get(SectionId.PCI_CONFIG) as { space: Uint8Array };
    await refused(
      rebuild(good, (s) => void (cfg(s).space[2] ^= 1)),
      Errno.EINVAL,
      "device id bits",
    );
    smallClient = await connect(small);
    await smallClient.mapRam(ram);
    await refused(
      good,
      Errno.EINVAL,
      "a 4 MiB disk for an 8 MiB one",
      new DeviceMigration(smallClient),
      smallClient,
    );

    // Still serving: the valid stream loads and the device runs.
    await dst.reset();
    await mig.setState(RESUMING);
    await mig.writeAll(good);
    await mig.setState(RUNNING);
    assert.notDeepEqual(await dst.regionRead(7, 0, 256), freshConfig, "the state was loaded");
    assert.notEqual(await deviceStatus(dst), 0, "DRIVER_OK and friends, from the source");
    assert.ok(!b.exited && !small.exited);
    assert.deepEqual(dst.violations, []);
    src.driver.close();
  } finally {
    await src.client.close();
    await dst?.close();
    await other?.close();
    await smallClient?.close();
    ram.close();
  }
});

Deno.test("migration protocol: a client that leaves mid-migration; DEVICE_RESET from every state", async () => {
  await using v = await startVfud();
  const ram = new MemfdRam(4 << 20);
  try {
    // PRE_COPY: the device runs on; STOP_COPY and RESUMING: it stays stopped for the next client.
    for (const [left, after] of [[PRE_COPY, RUNNING], [STOP_COPY, STOP], [RESUMING, STOP]]) {
      const first = await setUp(v, ram);
      await first.mig.setState(left);
      if (left === STOP_COPY) assert.ok((await first.mig.read(100)).length > 0);
      if (left === RESUMING) await first.mig.write(new Uint8Array(10));
      first.driver.close();
      await first.client.close();
      const c = await connect(v);
      const mig = new DeviceMigration(c);
      assert.equal(await mig.state(), after, `left in ${NAMES[left]}`);
      if (after === STOP) {
        await assertErrno(mig.read(10), Errno.EINVAL, "the transfer was abandoned");
        await mig.setState(RUNNING);
      }
      await c.close();
      const s = await setUp(v, ram); // the device serves I/O again
      s.driver.close();
      await s.client.close();
    }
    // DEVICE_RESET from any state returns to RUNNING, and the device works.
    for (const st of STATES) {
      const s = await setUp(v, ram);
      await s.mig.setState(st);
      await s.client.reset();
      assert.equal(await s.mig.state(), RUNNING, `reset from ${NAMES[st]}`);
      s.driver.close();
      await s.client.close();
      const again = await setUp(v, ram);
      assert.equal((await again.driver.read(10n, 8)).length, 4096);
      again.driver.close();
      await again.client.close();
    }
  } finally {
    ram.close();
  }
});
