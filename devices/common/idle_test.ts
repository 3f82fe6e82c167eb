import assert from "node:assert/strict";
import { IdleTracker } from "./idle.ts";

Deno.test("IdleTracker: whenIdle resolves when the count drops to zero, not before", async () => {
  const t = new IdleTracker();
  await t.whenIdle();
  t.begin();
  t.begin();
  let idle = false;
  const p = t.whenIdle().then(() => (idle = true));
  t.end();
  await Promise.resolve();
  assert.equal(idle, false);
  t.end();
  await p;
  assert.equal(idle, true);
  assert.throws(() => t.end());
});
