import assert from "node:assert/strict";
import { SerialRunner } from "./serial_runner.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("SerialRunner: a kick while the body runs runs it once more, never overlapping", async () => {
  let active = 0;
  let runs = 0;
  const gate = Promise.withResolvers<void>();
  const r = new SerialRunner(async () => {
    assert.equal(++active, 1, "bodies overlap");
    runs++;
    if (runs === 1) await gate.promise;
    active--;
  }, (e) => assert.fail(String(e)));
  r.kick();
  r.kick();
  r.kick();
  assert.equal(r.running, true);
  gate.resolve();
  await r.whenIdle();
  assert.equal(runs, 2, "the kicks during the run ran the body once more");
  assert.equal(r.running, false);
});

Deno.test("SerialRunner: a kick between the last check and the end of a run is not lost", async () => {
  // Regression: the kick came as a microtask after the loop had ended but before its finally
  // callback; it saw the runner still running and was dropped.
  let runs = 0;
  const r: SerialRunner = new SerialRunner(() => {
    if (++runs === 1) queueMicrotask(() => queueMicrotask(() => r.kick()));
    return Promise.resolve();
  }, (e) => assert.fail(String(e)));
  r.kick();
  await tick();
  await r.whenIdle();
  assert.equal(runs, 2);
});

Deno.test("SerialRunner: paused, kicks wait for resume; pause waits for the current run", async () => {
  const gate = Promise.withResolvers<void>();
  let runs = 0;
  let sawPause = false;
  const r = new SerialRunner(async () => {
    runs++;
    if (runs === 1) await gate.promise;
    sawPause ||= r.paused;
  }, (e) => assert.fail(String(e)));
  r.kick();
  let paused = false;
  const p = r.pause().then(() => (paused = true));
  await tick();
  assert.equal(paused, false, "the run in progress ends first");
  gate.resolve();
  await p;
  assert.equal(sawPause, true, "the body sees the pause (to stop at a boundary)");
  r.kick();
  await tick();
  assert.equal(runs, 1, "no run while paused");
  r.resume();
  await r.whenIdle();
  assert.equal(runs, 2, "the remembered kick ran on resume");
  r.resume();
  await tick();
  assert.equal(runs, 2, "resume without a kick runs nothing");
});

Deno.test("SerialRunner: a failing body goes to onError and the runner goes on", async () => {
  const errors: unknown[] = [];
  let runs = 0;
  const r = new SerialRunner(() => {
    runs++;
    return Promise.reject(new Error(`run ${runs}`));
  }, (e) => errors.push(e));
  r.kick();
  await r.whenIdle();
  r.kick();
  await r.whenIdle();
  assert.deepEqual(errors.map((e) => (e as Error).message), ["run 1", "run 2"]);
});
