/**
 * The model's side of the virtio transport: a model that starts work itself (a receive queue),
 * reaches the serving loop and announces configuration changes, with the same pause, save and
 * restore guarantees as driver-started requests.
 */
import assert from "node:assert/strict";
import { Isr, NO_VECTOR } from "../../spec/virtio.ts";
import { CC } from "./testing/driver.ts";
import { bringUp, DATA, modelRig, type Rig, RING0, settle } from "./testing/setup.ts";
import { SourceModel } from "./testing/source_model.ts";
import { withLoop } from "../../sys/testing.ts";
import { decodeRecord, encodeRecord } from "../../protocol/record.ts";
import { bounded } from "../../tests/watchdog.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** A source device with queue 0 up (INTx) and `n` 16-byte receive buffers made available. */
function sourceRig(n: number) {
  const rig = modelRig(new SourceModel());
  const q = bringUp(rig);
  const heads = Array.from(
    { length: n },
    (_, i) => q.send([{ addr: DATA + 16 * i, len: 16, write: true }]),
  );
  return { rig, q, heads };
}

function bytesAt(rig: Rig<SourceModel>, i: number, len: number): string {
  return new TextDecoder().decode(rig.mem.ram.subarray(DATA + 16 * i, DATA + 16 * i + len));
}

Deno.test("model work: buffers wait in the ring until the model has data; its kick fills them", async () => {
  const { rig, q, heads } = sourceRig(4);
  await settle(rig);
  assert.deepEqual(q.takeUsed(), [], "no data: the driver's buffers stay in the ring");
  assert.deepEqual(rig.ctx.triggers, []);
  rig.model.push(text("hello"));
  await settle(rig);
  assert.deepEqual(q.takeUsed(), [{ id: heads[0], len: 5 }]);
  assert.equal(bytesAt(rig, 0, 5), "hello");
  assert.deepEqual(rig.ctx.triggers, [0]);
  rig.model.push(text("a"), text("bb"), text("ccc"), text("dddd"), text("eeeee"));
  await settle(rig);
  assert.deepEqual(q.takeUsed().map((u) => u.len), [1, 2, 3], "as many as there are buffers");
  assert.equal(rig.model.pending.length, 2, "the rest waits for buffers");
  q.send([{ addr: DATA + 16 * 4, len: 16, write: true }]);
  q.send([{ addr: DATA + 16 * 5, len: 16, write: true }]);
  await settle(rig);
  assert.deepEqual(q.takeUsed().map((u) => u.len), [4, 5], "the driver's kick delivers them");
  assert.equal(bytesAt(rig, 5, 5), "eeeee");
});

Deno.test("model work: a kick before DRIVER_OK is ignored, the data waits for the driver", async () => {
  const rig = modelRig(new SourceModel());
  assert.ok(rig.drv.negotiate(rig.dev.offered));
  const q = rig.drv.setupQueue(0, RING0);
  q.submit(q.addChain([{ addr: DATA, len: 16, write: true }]));
  rig.model.push(text("early"));
  await settle(rig);
  assert.equal(q.usedIdx(), 0, "nothing before DRIVER_OK");
  rig.drv.driverOk(); // looks at every queue
  await settle(rig);
  assert.deepEqual(q.takeUsed().map((u) => u.len), [5]);
  assert.equal(bytesAt(rig, 0, 5), "early");
});

Deno.test("model work: the model raises a configuration change (generation, ISR, vector)", () => {
  const { rig } = sourceRig(0);
  const generation = rig.drv.read(CC.CONFIG_GENERATION, 1);
  rig.model.setLink(0);
  assert.equal(rig.drv.config(0, 4), 0);
  assert.equal(rig.drv.read(CC.CONFIG_GENERATION, 1), generation + 1);
  assert.deepEqual(rig.ctx.triggers, [0], "INTx while MSI-X is off");
  assert.equal(rig.drv.isr(), Isr.CONFIG);
  rig.ctx.msix = true;
  rig.drv.write(CC.CONFIG_MSIX_VECTOR, 2, 1);
  rig.model.setLink(1);
  assert.deepEqual(rig.ctx.triggers, [0, 1], "its MSI-X vector once MSI-X is on");
  rig.drv.write(CC.CONFIG_MSIX_VECTOR, 2, NO_VECTOR);
  rig.model.setLink(2);
  assert.deepEqual(rig.ctx.triggers, [0, 1], "no vector: no interrupt");
});

Deno.test("model work: the model reaches the serving loop and starts work from its timers", () =>
  withLoop(async (loop) => {
    const rig = modelRig(new SourceModel(), { transport: { loop } });
    const q = bringUp(rig);
    q.send([{ addr: DATA, len: 16, write: true }]);
    const host = rig.model.host!;
    assert.equal(host.loop, loop);
    await bounded("a timer of the serving loop", () =>
      new Promise<void>((done) => {
        host.setTimer(() => {
          rig.model.push(text("tick"));
          done();
        }, 1);
      }));
    await settle(rig);
    assert.deepEqual(q.takeUsed().map((u) => u.len), [4]);
    assert.equal(modelRig(new SourceModel()).model.host!.loop, undefined, "no loop in tests");
  }));

Deno.test("model work: paused, arrivals wait without touching guest memory; saved, they move", async () => {
  const { rig, q } = sourceRig(2);
  await rig.dev.pause();
  const before = rig.mem.ram.slice();
  rig.model.push(text("while paused"));
  await settle(rig);
  assert.deepEqual(rig.mem.ram, before, "a paused device wrote guest memory");
  const saved = decodeRecord(encodeRecord(rig.dev.save()));
  // The destination: another device over the same guest memory.
  const b = modelRig(new SourceModel(), { mem: {} });
  b.mem.ram.set(rig.mem.ram);
  await b.dev.pause();
  b.dev.restore(saved, rig.dev.stateVersion);
  b.dev.resume();
  await settle(b);
  q.takeUsed(); // (the source's view of the ring)
  const used = new DataView(b.mem.ram.buffer).getUint16(q.used + 2, true);
  assert.equal(used, 1, "the destination delivered the message the source held");
  assert.equal(new TextDecoder().decode(b.mem.ram.subarray(DATA, DATA + 12)), "while paused");
  rig.dev.resume();
});
