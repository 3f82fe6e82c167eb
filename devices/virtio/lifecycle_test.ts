/**
 * The virtio transport's lifecycle hooks: pause/resume with requests in flight, save/restore of
 * the transport and queue state into another device (a migration in one process), and the
 * validation of restored state.
 */
import assert from "node:assert/strict";
import { Errno, ErrnoError } from "../../sys/errno.ts";
import { decodeRecord, encodeRecord } from "../../protocol/record.ts";
import { NO_VECTOR, Status } from "../../spec/virtio.ts";
import { bringUp, echoRig, heldRequest, oneByte, settle, tick } from "./testing/setup.ts";
import { FakeContext } from "./testing/fake_memory.ts";
import { EchoModel } from "./testing/echo_model.ts";
import { VirtioPciDevice } from "./transport.ts";

/** A copy of a record as it would come out of a stream (decoded, plain). */
function roundTrip(state: unknown): Record<string, unknown> {
  return decodeRecord(encodeRecord(state as never)) as Record<string, unknown>;
}

Deno.test("virtio lifecycle: pause lets requests in flight finish, holds new ones until resume", async () => {
  const rig = await heldRequest();
  const q = rig.q;
  let paused = false;
  const p = rig.dev.pause().then(() => (paused = true));
  q.send(oneByte(8)); // kicked while pausing
  await tick();
  assert.equal(paused, false, "waits for the request in flight");
  rig.model.release();
  await p;
  assert.equal(q.usedIdx(), 1, "the request in flight completed and was published");
  assert.equal(rig.model.seen.length, 1, "nothing new started");
  await settle(rig); // pause/resume nest: still paused afterwards
  assert.equal(rig.model.seen.length, 1);
  rig.model.hold = false;
  rig.dev.resume();
  await settle(rig);
  assert.equal(q.usedIdx(), 2, "the kick that came while paused was acted on");
});

Deno.test("virtio lifecycle: save and restore into another device continues the queues", async () => {
  const a = echoRig();
  const q = bringUp(a, undefined, 1);
  q.send(oneByte());
  await settle(a);
  // Buffers the source never took: made available, not kicked.
  q.submit(q.addChain(oneByte(16)));
  await a.dev.pause();
  const saved = roundTrip(a.dev.save());
  // The destination: the same model type, the same guest memory.
  const model = new EchoModel();
  const b = new VirtioPciDevice(model);
  const ctx = new FakeContext(a.mem);
  b.attach(ctx);
  await b.pause();
  b.restore(saved, b.stateVersion);
  assert.deepEqual(roundTrip(b.save()), saved, "save after restore gives the same record");
  assert.equal(b.status, a.dev.status);
  assert.deepEqual(b.guestRegions(), a.dev.guestRegions());
  a.drv.dev = b; // the driver carries on with the new device, not re-initialised
  b.resume();
  await settle({ dev: b });
  assert.equal(q.usedIdx(), 2, "the buffer left in the avail ring ran on the destination");
  assert.equal(model.seen.length, 1);
  q.send(oneByte(32));
  await settle({ dev: b });
  assert.equal(q.usedIdx(), 3);
  assert.equal(a.model.seen.length, 1, "the source did nothing after its pause");
});

Deno.test("virtio lifecycle: invalid state is refused with EINVAL and changes nothing", async () => {
  const a = echoRig();
  bringUp(a, undefined, 1);
  await a.dev.pause();
  const good = roundTrip(a.dev.save());
  const b = echoRig();
  await b.dev.pause();
  const before = encodeRecord(b.dev.save() as never);
  const edit = (f: (s: Record<string, unknown>, q: Record<string, unknown>) => void) => {
    const s = roundTrip(good);
    f(s, (s.queues as Record<string, unknown>[])[0]);
    return s;
  };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["size 3", edit((_s, q) => (q.size = 3)), /size: 3 is not a power of two/],
    ["size above the maximum", edit((_s, q) => (q.size = 16)), /up to 8/],
    ["misaligned descriptor table", edit((_s, q) => (q.desc = 0x1008n)), /16-byte aligned/],
    ["ring past 2^64", edit((_s, q) => (q.device = (1n << 64n) - 4n)), /wraps/],
    ["vector out of range", edit((_s, q) => (q.vector = 7)), /vector 7 out of range/],
    ["config vector", edit((s) => (s.configVector = 3)), /vector 3 out of range/],
    [
      "feature never offered",
      edit((s) => (s.negotiated = (s.negotiated as bigint) | 1n << 40n)),
      /never offered/,
    ],
    ["FEATURES_OK without VERSION_1", edit((s) => (s.negotiated = 1n << 5n)), /VERSION_1/],
    [
      "features without FEATURES_OK",
      edit((s) => (s.status = Status.DRIVER)),
      /without FEATURES_OK/,
    ],
    ["one queue too few", edit((s) => (s.queues as unknown[]).pop()), /1 items, not 2/],
    ["an unknown field", edit((s) => (s.extra = 1)), /unknown field/],
    ["a captured head beyond the queue", edit((_s, q) => (q.captured = [8])), /head beyond 8/],
    ["a captured head twice", edit((_s, q) => (q.captured = [1, 1])), /a head twice/],
    ["index beyond u16", edit((_s, q) => (q.usedIdx = 70000)), /usedIdx: 70000/],
    ["model state for a model without any", edit((s) => (s.model = 1)), /no model state/],
  ];
  for (const [what, state, re] of cases) {
    assert.throws(
      () => b.dev.restore(state, 1),
      (e) => e instanceof ErrnoError && e.errno === Errno.EINVAL && re.test(e.message),
      what,
    );
    assert.deepEqual(encodeRecord(b.dev.save() as never), before, `${what}: nothing changed`);
  }
  assert.throws(() => b.dev.restore(good, 2), (e) => (e as ErrnoError).errno === Errno.ENOTSUP);
  b.dev.restore(good, 1); // the original is fine
  assert.equal((roundTrip(b.dev.save()).queues as { vector: number }[])[1].vector, NO_VECTOR);
});

Deno.test("virtio lifecycle: save and restore need a paused device", () => {
  const rig = echoRig();
  assert.throws(() => rig.dev.save(), /running device/);
  assert.throws(() => rig.dev.restore({}, 1), /running device/);
});
