import assert from "node:assert/strict";
import { NO_VECTOR, Status } from "../../spec/virtio.ts";
import { CC } from "./testing/driver.ts";
import { bringUp, DATA, echoRig, heldRequest, oneByte, settle, tick } from "./testing/setup.ts";
import { FakeContext, FakeGuestMemory } from "./testing/fake_memory.ts";
import { quiesce } from "../device.ts";

Deno.test("writing 0 to device_status resets every register", async () => {
  const rig = echoRig();
  const { drv } = rig;
  const q = bringUp(rig, undefined, 1);
  drv.write(CC.CONFIG_MSIX_VECTOR, 2, 2);
  q.send(oneByte());
  await settle(rig);
  drv.write(CC.QUEUE_SELECT, 2, 1);
  const lowered = rig.ctx.lowered;
  const resets = rig.model.resets;
  drv.setStatus(0);
  assert.equal(drv.status(), 0);
  assert.equal(rig.model.resets, resets + 1);
  assert.equal(rig.ctx.lowered, lowered + 1);
  assert.equal(drv.isr(), 0);
  assert.equal(drv.read(CC.QUEUE_SELECT, 2), 0);
  assert.equal(drv.read(CC.CONFIG_MSIX_VECTOR, 2), NO_VECTOR);
  assert.equal(drv.read(CC.QUEUE_ENABLE, 2), 0);
  assert.equal(drv.read(CC.QUEUE_MSIX_VECTOR, 2), NO_VECTOR);
  assert.equal(drv.read(CC.QUEUE_SIZE, 2), 8);
  assert.equal(drv.read(CC.QUEUE_DESC, 4), 0);
  drv.write(CC.DRIVER_FEATURE_SELECT, 4, 1);
  assert.equal(drv.read(CC.DRIVER_FEATURE, 4), 0);
  assert.equal(rig.dev.negotiated, 0n);
  // Kicks after reset do nothing.
  q.send(oneByte());
  await settle(rig);
  assert.equal(q.usedIdx(), 1);
});

Deno.test("reset waits for in-flight requests; status reads non-zero until then", async () => {
  const rig = await heldRequest();
  const q = rig.q;
  assert.equal(rig.model.held, 1);
  const resets = rig.model.resets;
  rig.drv.setStatus(0);
  assert.notEqual(rig.drv.status(), 0);
  rig.drv.setStatus(Status.ACKNOWLEDGE); // ignored while the reset is pending
  q.kick(); // ignored too
  await tick();
  assert.equal(rig.model.resets, resets);
  rig.model.release();
  await settle(rig);
  assert.equal(rig.drv.status(), 0);
  assert.equal(rig.model.resets, resets + 1);
  assert.equal(q.usedIdx(), 1); // the request completed before the reset finished
  rig.model.hold = false;
  rig.mem.ram.fill(0, q.desc, q.desc + 0x1000);
  const q2 = bringUp(rig);
  q2.send(oneByte());
  await settle(rig);
  assert.equal(q2.usedIdx(), 1);
});

Deno.test("Device.reset() resolves after in-flight requests finished", async () => {
  const rig = await heldRequest();
  const resets = rig.model.resets;
  let done = false;
  const reset = rig.dev.reset().then(() => (done = true));
  await tick();
  assert.equal(done, false);
  rig.model.release();
  await reset;
  assert.equal(rig.drv.status(), 0);
  assert.equal(rig.model.resets, resets + 1);
});

Deno.test("quiesce waits for in-flight requests; later kicks still work", async () => {
  const rig = await heldRequest();
  const q = rig.q;
  let quiet = false;
  const quieted = quiesce(rig.dev).then(() => (quiet = true));
  q.send(oneByte()); // arrives while paused
  await tick();
  assert.equal(quiet, false);
  assert.equal(rig.model.held, 1);
  rig.model.hold = false;
  rig.model.release();
  await quieted;
  await settle(rig);
  assert.equal(q.usedIdx(), 2);
  assert.equal(rig.mem.live, 0);
});

Deno.test("flush and close reach the model", async () => {
  const rig = echoRig();
  let closed = false;
  rig.model.close = () => (closed = true);
  await rig.dev.flush();
  rig.dev.close();
  assert.equal(closed, true);
});

Deno.test("nested quiesce calls resume only when the last one ends", async () => {
  const rig = echoRig();
  const q = bringUp(rig);
  await settle(rig);
  rig.model.hold = true;
  q.send(oneByte());
  await tick();
  const a = quiesce(rig.dev);
  const b = quiesce(rig.dev);
  rig.model.hold = false;
  rig.model.release();
  await Promise.all([a, b]);
  q.send(oneByte());
  await settle(rig);
  assert.equal(q.usedIdx(), 2);
});

Deno.test("attach() again switches guest memory and interrupts to the new context", async () => {
  const rig = echoRig();
  const q = bringUp(rig);
  await settle(rig);
  rig.mem.ram.set([0x5a], DATA + 8);
  const head = q.addChain([{ addr: DATA + 8, len: 1 }, { addr: DATA, len: 1, write: true }]);
  const mem2 = new FakeGuestMemory({ size: 1 << 20 });
  mem2.ram.set(rig.mem.ram); // same guest RAM contents, new session
  const ctx2 = new FakeContext(mem2);
  rig.dev.attach(ctx2);
  new DataView(mem2.ram.buffer).setUint16(q.avail + 4, head, true);
  new DataView(mem2.ram.buffer).setUint16(q.avail + 2, 1, true);
  q.kick();
  await settle(rig);
  assert.equal(new DataView(mem2.ram.buffer).getUint16(q.used + 2, true), 1);
  assert.equal(mem2.ram[DATA], 0x5a);
  assert.equal(rig.mem.ram[DATA], 0);
  assert.deepEqual(ctx2.triggers, [0]);
});
