import assert from "node:assert/strict";
import { DescFlag, Isr, Status } from "../../spec/virtio.ts";
import { CC, type DriverQueue } from "./testing/driver.ts";
import { bringUp, DATA, type EchoRig, echoRig, oneByte, RING0, settle } from "./testing/setup.ts";

/** Brings up an echo device with MSI-X on (config vector 0, queue vector 1). */
function rigWithMsix(): { rig: EchoRig; q: DriverQueue; errors: unknown[] } {
  const errors: unknown[] = [];
  const rig = echoRig({ transport: { onError: (e) => errors.push(e) } });
  rig.ctx.msix = true;
  rig.drv.negotiate(rig.dev.offered);
  rig.drv.write(CC.CONFIG_MSIX_VECTOR, 2, 0);
  const q = rig.drv.setupQueue(0, RING0, undefined, 1);
  rig.drv.driverOk();
  return { rig, q, errors };
}

/** Asserts DEVICE_NEEDS_RESET with a config interrupt, then that a reset revives the device. */
async function assertNeedsReset(rig: EchoRig, q: DriverQueue, errors: unknown[]): Promise<void> {
  await settle(rig);
  assert.equal(q.usedIdx(), 0);
  assert.ok(rig.drv.status() & Status.DEVICE_NEEDS_RESET);
  assert.deepEqual(rig.ctx.triggers, [0]); // config vector
  assert.equal(rig.drv.isr() & Isr.CONFIG, Isr.CONFIG);
  assert.equal(errors.length, 1);
  // Further kicks are ignored until reset.
  q.kick();
  await settle(rig);
  assert.equal(q.usedIdx(), 0);
  // A reset and fresh setup make the device work again.
  rig.mem.ram.fill(0, RING0, RING0 + 0x1000);
  const q2 = bringUp(rig, undefined, 1);
  assert.equal(rig.drv.status() & Status.DEVICE_NEEDS_RESET, 0);
  q2.send(oneByte());
  await settle(rig);
  assert.equal(q2.usedIdx(), 1);
}

const BAD_CHAINS: [string, (q: DriverQueue) => number][] = [
  ["descriptor loop", (q) => {
    q.setDesc(0, DATA, 1, DescFlag.NEXT, 1);
    q.setDesc(1, DATA, 1, DescFlag.NEXT, 0);
    return 0;
  }],
  ["head index out of range", () => 9],
  ["next index out of range", (q) => {
    q.setDesc(0, DATA, 1, DescFlag.NEXT, 8);
    return 0;
  }],
  ["readable after writable", (q) => {
    q.setDesc(0, DATA, 1, DescFlag.WRITE | DescFlag.NEXT, 1);
    q.setDesc(1, DATA, 1, 0);
    return 0;
  }],
  ["indirect table length not a multiple of 16", (q) => {
    q.setDesc(0, DATA, 24, DescFlag.INDIRECT);
    return 0;
  }],
  ["empty indirect table", (q) => {
    q.setDesc(0, DATA, 0, DescFlag.INDIRECT);
    return 0;
  }],
  ["indirect table larger than the queue", (q) => {
    q.setDesc(0, DATA, 16 * 9, DescFlag.INDIRECT);
    return 0;
  }],
  ["nested indirect", (q) => {
    q.setDesc(0, DATA, 16, DescFlag.INDIRECT);
    q.setDesc(0, DATA + 0x100, 16, DescFlag.INDIRECT, 0, DATA);
    return 0;
  }],
  ["indirect with NEXT", (q) => {
    q.setDesc(0, DATA, 16, DescFlag.INDIRECT | DescFlag.NEXT, 1);
    return 0;
  }],
  ["loop inside an indirect table", (q) => {
    q.setDesc(0, DATA, 32, DescFlag.INDIRECT);
    q.setDesc(0, DATA + 0x100, 1, DescFlag.NEXT, 1, DATA);
    q.setDesc(1, DATA + 0x100, 1, DescFlag.NEXT, 0, DATA);
    return 0;
  }],
  ["indirect table in unmapped memory", (q) => {
    q.setDesc(0, 0x200000, 16, DescFlag.INDIRECT);
    return 0;
  }],
];

for (const [name, build] of BAD_CHAINS) {
  Deno.test(`malformed chain (${name}) sets DEVICE_NEEDS_RESET`, async () => {
    const { rig, q, errors } = rigWithMsix();
    q.submit(build(q));
    q.kick();
    await assertNeedsReset(rig, q, errors);
  });
}

Deno.test("avail idx jumping more than the queue size sets DEVICE_NEEDS_RESET", async () => {
  const { rig, q, errors } = rigWithMsix();
  q.setAvailIdx(9);
  q.kick();
  await assertNeedsReset(rig, q, errors);
});

Deno.test("rings in unmapped memory set DEVICE_NEEDS_RESET", async () => {
  const { rig, q, errors } = rigWithMsix();
  q.addChain(oneByte());
  q.submit(0);
  rig.mem.addHole(q.desc, 16);
  q.kick();
  await settle(rig);
  assert.ok(rig.drv.status() & Status.DEVICE_NEEDS_RESET);
  assert.equal(errors.length, 1);
});

Deno.test("used ring in unmapped memory sets DEVICE_NEEDS_RESET", async () => {
  const { rig, q, errors } = rigWithMsix();
  rig.mem.addHole(q.used + 4, 8);
  q.send(oneByte());
  await settle(rig);
  assert.ok(rig.drv.status() & Status.DEVICE_NEEDS_RESET);
  assert.equal(errors.length, 1);
});

Deno.test("a request the model cannot complete sets DEVICE_NEEDS_RESET", async () => {
  const { rig, q, errors } = rigWithMsix();
  rig.model.failWith = new Error("boom");
  q.send(oneByte());
  await settle(rig);
  assert.ok(rig.drv.status() & Status.DEVICE_NEEDS_RESET);
  assert.equal((errors[0] as Error).message, "boom");
});

Deno.test("zero-length buffers are accepted", async () => {
  const rig = echoRig();
  const q = bringUp(rig);
  q.send([{ addr: DATA, len: 0 }, { addr: DATA, len: 0, write: true }]);
  await settle(rig);
  assert.deepEqual(q.takeUsed(), [{ id: 0, len: 0 }]);
  assert.equal(rig.drv.status() & Status.DEVICE_NEEDS_RESET, 0);
});

Deno.test("a full ring of long chains is processed (chain length = queue size)", async () => {
  const rig = echoRig();
  const q = bringUp(rig);
  const bufs = Array.from({ length: 8 }, (_, i) => ({ addr: DATA + i, len: 1, write: i > 3 }));
  q.send(bufs);
  await settle(rig);
  assert.deepEqual(q.takeUsed(), [{ id: 0, len: 4 }]);
});

Deno.test("a model that throws synchronously does not wedge reset", async () => {
  const { rig, q, errors } = rigWithMsix();
  rig.model.handle = () => {
    throw new Error("sync boom");
  };
  q.send(oneByte());
  await settle(rig);
  assert.ok(rig.drv.status() & Status.DEVICE_NEEDS_RESET);
  assert.equal(errors.length, 1);
  await rig.dev.reset();
  assert.equal(rig.drv.status(), 0);
});
