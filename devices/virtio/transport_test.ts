import assert from "node:assert/strict";
import { CapType, feature, FeatureBit, Isr, NO_VECTOR, Status } from "../../spec/virtio.ts";
import { MSIX_BAR, NOTIFY_OFF_MULTIPLIER, Region, VIRTIO_BAR } from "./layout.ts";
import { CC } from "./testing/driver.ts";
import { bringUp, DATA, echoRig, oneByte, RING1, settle, tick } from "./testing/setup.ts";

const ALL_TRANSPORT = feature(FeatureBit.VERSION_1) | feature(FeatureBit.RING_INDIRECT_DESC) |
  feature(FeatureBit.RING_EVENT_IDX);

Deno.test("pci identity, BARs and the four virtio capabilities", () => {
  const { dev } = echoRig();
  const pci = dev.pci;
  assert.equal(pci.vendorId, 0x1af4);
  assert.equal(pci.deviceId, 0x1040 + 0x3f);
  assert.equal(pci.subsystemVendorId, 0x1af4);
  assert.equal(pci.subsystemId, 0x3f);
  assert.equal(pci.revision, 1);
  assert.equal(pci.interruptPin, 1);
  assert.deepEqual(pci.msix, { vectors: 3, bar: MSIX_BAR, tableOffset: 0, pbaOffset: 0x800 });
  assert.deepEqual(pci.bars.map((b) => [b.index, b.size, b.kind]), [
    [1, 0x1000, "mem32"],
    [4, 0x4000, "mem32"],
  ]);
  const caps = pci.capabilities.map((c) => {
    const v = new DataView(c.body.buffer);
    return {
      id: c.id,
      len: c.body[0],
      type: c.body[1],
      bar: c.body[2],
      offset: v.getUint32(6, true),
      length: v.getUint32(10, true),
      mult: c.body.length > 14 ? v.getUint32(14, true) : undefined,
    };
  });
  assert.deepEqual(caps, [
    { id: 9, len: 16, type: CapType.COMMON, bar: 4, offset: 0, length: 0x40, mult: undefined },
    { id: 9, len: 16, type: CapType.ISR, bar: 4, offset: 0x1000, length: 1, mult: undefined },
    { id: 9, len: 16, type: CapType.DEVICE, bar: 4, offset: 0x2000, length: 8, mult: undefined },
    { id: 9, len: 20, type: CapType.NOTIFY, bar: 4, offset: 0x3000, length: 8, mult: 4 },
  ]);
});

Deno.test("device features: model bits plus VERSION_1, INDIRECT_DESC, EVENT_IDX", () => {
  const { drv } = echoRig();
  assert.equal(drv.deviceFeatures(), ALL_TRANSPORT | (1n << 5n));
  drv.write(CC.DEVICE_FEATURE_SELECT, 4, 2);
  assert.equal(drv.read(CC.DEVICE_FEATURE, 4), 0);
  const plain = echoRig({ transport: { eventIdx: false, indirectDesc: false } });
  assert.equal(plain.drv.deviceFeatures(), feature(FeatureBit.VERSION_1) | (1n << 5n));
});

Deno.test("FEATURES_OK only for a subset of the offered features that has VERSION_1", () => {
  const { drv, dev } = echoRig();
  assert.equal(drv.negotiate(feature(FeatureBit.VERSION_1) | (1n << 5n)), true);
  assert.equal(dev.negotiated, feature(FeatureBit.VERSION_1) | (1n << 5n));
  assert.equal(drv.negotiate(feature(FeatureBit.VERSION_1) | (1n << 7n)), false);
  assert.equal(drv.status(), Status.ACKNOWLEDGE | Status.DRIVER);
  assert.equal(drv.negotiate(1n << 5n), false);
  // Features written after FEATURES_OK are ignored.
  assert.equal(drv.negotiate(feature(FeatureBit.VERSION_1)), true);
  drv.write(CC.DRIVER_FEATURE_SELECT, 4, 0);
  drv.write(CC.DRIVER_FEATURE, 4, 0xffffffff);
  assert.equal(drv.read(CC.DRIVER_FEATURE, 4), 0);
});

Deno.test("queue registers: size limits, vectors, notify_off, 64-bit addresses", () => {
  const { drv } = echoRig({ queueSizes: [8, 16] });
  assert.equal(drv.read(CC.NUM_QUEUES, 2), 2);
  drv.write(CC.QUEUE_SELECT, 2, 1);
  assert.equal(drv.read(CC.QUEUE_SIZE, 2), 16);
  assert.equal(drv.read(CC.QUEUE_NOTIFY_OFF, 2), 1);
  drv.write(CC.QUEUE_SIZE, 2, 12); // not a power of two: ignored
  assert.equal(drv.read(CC.QUEUE_SIZE, 2), 16);
  drv.write(CC.QUEUE_SIZE, 2, 32); // above the maximum: ignored
  assert.equal(drv.read(CC.QUEUE_SIZE, 2), 16);
  drv.write(CC.QUEUE_SIZE, 2, 4);
  assert.equal(drv.read(CC.QUEUE_SIZE, 2), 4);
  assert.equal(drv.read(CC.QUEUE_MSIX_VECTOR, 2), NO_VECTOR);
  drv.write(CC.QUEUE_MSIX_VECTOR, 2, 2);
  assert.equal(drv.read(CC.QUEUE_MSIX_VECTOR, 2), 2);
  drv.write(CC.QUEUE_MSIX_VECTOR, 2, 3); // only 3 vectors (0-2): mapping fails
  assert.equal(drv.read(CC.QUEUE_MSIX_VECTOR, 2), NO_VECTOR);
  drv.write(CC.CONFIG_MSIX_VECTOR, 2, 0);
  assert.equal(drv.read(CC.CONFIG_MSIX_VECTOR, 2), 0);
  const wide = new Uint8Array(8);
  new DataView(wide.buffer).setBigUint64(0, 0x1_2345_6000n, true);
  drv.dev.barWrite(VIRTIO_BAR, CC.QUEUE_DESC, wide);
  assert.equal(drv.read(CC.QUEUE_DESC, 4), 0x2345_6000);
  assert.equal(drv.read(CC.QUEUE_DESC + 4, 4), 1);
  const back = new Uint8Array(8);
  drv.dev.barRead(VIRTIO_BAR, CC.QUEUE_DESC, back);
  assert.deepEqual(back, wide);
  drv.write(CC.QUEUE_SELECT, 2, 5); // no such queue
  assert.equal(drv.read(CC.QUEUE_SIZE, 2), 0);
  drv.write(CC.QUEUE_ENABLE, 2, 1);
  assert.equal(drv.read(CC.QUEUE_ENABLE, 2), 0);
  assert.equal(drv.read(0x3c, 4), 0); // admin queue fields
});

Deno.test("device config reads and writes go to the model; other BARs read 0", () => {
  const { drv, dev, model } = echoRig();
  assert.equal(drv.config(0, 4), 0x04030201);
  assert.equal(drv.config(6, 4), 0x0807); // clipped at the end of the structure
  drv.write(Region.DEVICE + 1, 1, 0xaa);
  assert.equal(model.config[1], 0xaa);
  const b = new Uint8Array([9, 9]);
  dev.barRead(0, 0, b);
  assert.deepEqual(b, new Uint8Array(2));
  const generation = drv.read(CC.CONFIG_GENERATION, 1);
  dev.configChanged();
  assert.equal(drv.read(CC.CONFIG_GENERATION, 1), generation + 1);
});

Deno.test("echo round trip with INTx: ISR bit 0, read-to-clear, lowerIntx", async () => {
  const rig = echoRig();
  const q = bringUp(rig);
  rig.mem.ram.set([1, 2, 3, 4], DATA);
  const head = q.send([{ addr: DATA, len: 4 }, { addr: DATA + 0x100, len: 4, write: true }]);
  await settle(rig);
  assert.deepEqual(q.takeUsed(), [{ id: head, len: 4 }]);
  assert.deepEqual([...rig.mem.ram.subarray(DATA + 0x100, DATA + 0x104)], [1, 2, 3, 4]);
  assert.deepEqual(rig.ctx.triggers, [0]);
  const lowered = rig.ctx.lowered;
  assert.equal(rig.drv.isr(), Isr.QUEUE);
  assert.equal(rig.ctx.lowered, lowered + 1);
  assert.equal(rig.drv.isr(), 0);
});

Deno.test("MSI-X: queue vector is triggered, NO_VECTOR suppresses", async () => {
  const rig = echoRig();
  rig.ctx.msix = true;
  const q = bringUp(rig, undefined, 1);
  q.send([{ addr: DATA, len: 1 }, { addr: DATA + 8, len: 1, write: true }]);
  await settle(rig);
  assert.deepEqual(rig.ctx.triggers, [1]);
  rig.drv.write(CC.QUEUE_SELECT, 2, 0);
  rig.drv.write(CC.QUEUE_MSIX_VECTOR, 2, NO_VECTOR);
  q.send([{ addr: DATA, len: 1 }, { addr: DATA + 8, len: 1, write: true }]);
  await settle(rig);
  assert.equal(q.takeUsed().length, 2);
  assert.deepEqual(rig.ctx.triggers, [1]);
});

Deno.test("VIRTQ_AVAIL_F_NO_INTERRUPT suppresses interrupts without EVENT_IDX", async () => {
  const rig = echoRig();
  const q = bringUp(rig, feature(FeatureBit.VERSION_1));
  q.setAvailFlags(1);
  q.send(oneByte());
  await settle(rig);
  assert.equal(q.takeUsed().length, 1);
  assert.deepEqual(rig.ctx.triggers, []);
  q.setAvailFlags(0);
  q.send(oneByte());
  await settle(rig);
  assert.deepEqual(rig.ctx.triggers, [0]);
});

Deno.test("EVENT_IDX: used_event decides interrupts, avail_event is published", async () => {
  const rig = echoRig();
  const q = bringUp(rig); // all features, incl. EVENT_IDX
  q.setAvailFlags(1); // ignored with EVENT_IDX
  q.setUsedEvent(0);
  q.send(oneByte());
  await settle(rig);
  assert.deepEqual(rig.ctx.triggers, [0]); // first completion always notifies
  assert.equal(q.availEvent(), 1);
  q.setUsedEvent(5); // interrupt only after used idx passes 5
  for (let i = 0; i < 3; i++) {
    q.send(oneByte());
    await settle(rig);
  }
  assert.deepEqual(rig.ctx.triggers, [0]);
  assert.equal(q.availEvent(), 4);
  for (let i = 0; i < 3; i++) {
    q.send(oneByte());
    await settle(rig);
  }
  assert.equal(q.usedIdx(), 7);
  assert.deepEqual(rig.ctx.triggers, [0, 0]); // at used idx 6 (event 5 crossed)
});

Deno.test("EVENT_IDX: a buffer added while avail_event is stale is found without a kick", async () => {
  const rig = echoRig();
  const q = bringUp(rig);
  await settle(rig);
  let raced = false;
  rig.mem.onWrite = (addr) => {
    // The driver adds a buffer right before the device publishes avail_event: it saw the old
    // avail_event (0, already passed), so it does not kick. The device must re-check avail idx.
    if (addr === BigInt(q.used + 4 + 8 * q.size) && !raced) {
      raced = true;
      q.submit(q.addChain(oneByte()));
    }
  };
  q.send(oneByte());
  await settle(rig);
  assert.equal(raced, true);
  assert.equal(q.takeUsed().length, 2);
  assert.equal(q.availEvent(), 2);
});

Deno.test("kicks during processing are not lost; requests run concurrently", async () => {
  const rig = echoRig();
  const q = bringUp(rig, feature(FeatureBit.VERSION_1));
  rig.model.hold = true;
  const a = q.send(oneByte());
  await tick();
  const b = q.send(oneByte(1));
  await tick();
  assert.equal(rig.model.held, 2);
  rig.model.release(); // complete both, second before first would also be fine
  rig.model.hold = false;
  await settle(rig);
  assert.deepEqual(q.takeUsed().map((u) => u.id).sort(), [a, b].sort());
});

Deno.test("out-of-order completion: used ring reports each head once", async () => {
  const rig = echoRig();
  const q = bringUp(rig, feature(FeatureBit.VERSION_1));
  rig.model.hold = true;
  const heads = [0, 1, 2].map((i) => q.addChain(oneByte(i)));
  heads.forEach((h) => q.submit(h));
  q.kick();
  await tick();
  assert.equal(rig.model.held, 3);
  rig.model.release(1);
  await tick();
  assert.deepEqual(q.takeUsed().map((u) => u.id), [heads[0]]);
  rig.model.release();
  rig.model.hold = false;
  await settle(rig);
  assert.deepEqual(q.takeUsed().map((u) => u.id), [heads[1], heads[2]]);
});

Deno.test("kicks before DRIVER_OK are processed when DRIVER_OK is set", async () => {
  const rig = echoRig();
  rig.drv.negotiate(rig.dev.offered);
  const q = rig.drv.setupQueue(0, 0x1000);
  q.send(oneByte());
  await settle(rig);
  assert.equal(q.usedIdx(), 0);
  rig.drv.driverOk();
  await settle(rig);
  assert.equal(q.usedIdx(), 1);
});

Deno.test("no DMA while bus mastering is off", async () => {
  const rig = echoRig();
  const q = bringUp(rig);
  await settle(rig);
  rig.ctx.master = false;
  q.send(oneByte());
  await settle(rig);
  assert.equal(q.usedIdx(), 0);
  rig.ctx.master = true;
  q.kick();
  await settle(rig);
  assert.equal(q.usedIdx(), 1);
});

Deno.test("a second queue uses its own notify address and vector", async () => {
  const rig = echoRig();
  rig.ctx.msix = true;
  rig.drv.negotiate(rig.dev.offered);
  rig.drv.setupQueue(0, 0x1000, undefined, 1);
  const q1 = rig.drv.setupQueue(1, RING1, undefined, 2);
  rig.drv.driverOk();
  q1.send(oneByte());
  await settle(rig);
  assert.equal(q1.usedIdx(), 1);
  assert.deepEqual(rig.ctx.triggers, [2]);
  assert.equal(NOTIFY_OFF_MULTIPLIER * 1 + Region.NOTIFY, 0x3004);
});
