import assert from "node:assert/strict";
import { FifoBudget, WaitQueue } from "./waiters.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("WaitQueue: woken one at a time in arrival order, with what each waits for", async () => {
  const q = new WaitQueue<string, number>();
  const got: string[] = [];
  q.wait(1).then((v) => got.push(`a:${v}`));
  q.wait(2).then((v) => got.push(`b:${v}`));
  assert.equal(q.length, 2);
  assert.equal(q.peek(), 1);
  assert.equal(q.wakeOne("x"), true);
  assert.equal(q.peek(), 2);
  await tick();
  assert.deepEqual(got, ["a:x"]);
  q.wakeAll("y");
  await tick();
  assert.deepEqual(got, ["a:x", "b:y"]);
  assert.equal(q.wakeOne("z"), false, "nobody waits");
  assert.equal(q.peek(), undefined);
});

Deno.test("WaitQueue: failAll rejects every waiter; later waiters are not affected", async () => {
  const q = new WaitQueue();
  const a = q.wait();
  const b = q.wait();
  q.failAll(new Error("gone"));
  await assert.rejects(a, /gone/);
  await assert.rejects(b, /gone/);
  assert.equal(q.length, 0);
  const c = q.wait();
  q.wakeAll();
  await c;
});

Deno.test("FifoBudget: takes up to the size, waits beyond, FIFO even when a later take fits", async () => {
  const b = new FifoBudget(100);
  assert.equal(b.tryTake(90), true);
  const order: string[] = [];
  const big = b.take(100).then(() => order.push("big"));
  const small = b.take(5).then(() => order.push("small")); // fits in the 10 left, but queues
  assert.equal(b.tryTake(1), false, "nobody overtakes a waiter");
  assert.equal(b.waiting, 2);
  await tick();
  assert.deepEqual(order, []);
  b.give(90);
  await big;
  assert.equal(b.free, 0);
  assert.deepEqual(order, ["big"]);
  b.give(100);
  await small;
  assert.deepEqual(order, ["big", "small"]);
  assert.equal(b.free, 95);
});

Deno.test("FifoBudget: failWaiters fails the waiting takes, the taken units stay out", async () => {
  const b = new FifoBudget(10);
  await b.take(10);
  const w = b.take(1);
  b.failWaiters(new Error("client gone"));
  await assert.rejects(w, /client gone/);
  assert.equal(b.waiting, 0);
  assert.equal(b.free, 0);
  b.give(10);
  assert.equal(b.free, 10);
});
