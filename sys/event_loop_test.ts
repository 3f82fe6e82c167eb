import assert from "node:assert/strict";
import { check, closeFd, libc } from "./ffi.ts";
import { C } from "./layout.ts";
import { createEventfd, drainEventfd, EventLoop, signalEventfd } from "./event_loop.ts";

function pipe(): [number, number] {
  const fds = new Int32Array(2);
  check("pipe2", libc.pipe2(new Uint8Array(fds.buffer), C.O_CLOEXEC | 0o4000 /* O_NONBLOCK */));
  return [fds[0], fds[1]];
}

/** Stops `loop` when a wall-clock deadline passes, checked from inside a handler (never yields). */
function deadlineGuard(loop: EventLoop, ms: number): () => boolean {
  const end = Date.now() + ms;
  return () => {
    if (Date.now() < end) return false;
    loop.stop();
    return true;
  };
}

Deno.test("EventLoop: an fd that hangs up is reported once, then no longer watched", async () => {
  const loop = new EventLoop();
  const [r, w] = pipe();
  closeFd(w); // the reader sees EPOLLHUP for ever
  const seen: number[] = [];
  loop.add(r, C.EPOLLIN, (ev) => {
    seen.push(ev);
    if (seen.length >= 100) loop.stop(); // bound: the defect spins here
  });
  const hangups: number[] = [];
  loop.onHangup = (fd) => hangups.push(fd);
  const t = setTimeout(() => loop.stop(), 50);
  try {
    await loop.run();
  } finally {
    clearTimeout(t);
    closeFd(r);
  }
  assert.equal(seen.length, 1, `handler called ${seen.length} times`);
  assert.ok(seen[0] & C.EPOLLHUP);
  assert.deepEqual(hangups, [r]);
  assert.equal(loop.watches(r), false);
});

Deno.test("EventLoop: a handler that removes its hung-up fd itself is not second-guessed", async () => {
  const loop = new EventLoop();
  const [r, w] = pipe();
  closeFd(w);
  let calls = 0;
  loop.add(r, C.EPOLLIN, () => {
    calls++;
    loop.remove(r);
    closeFd(r);
    loop.stop();
  });
  const hangups: number[] = [];
  loop.onHangup = (fd) => hangups.push(fd);
  await loop.run();
  assert.equal(calls, 1);
  assert.deepEqual(hangups, []);
});

for (const mode of ["run", "runBlocking"] as const) {
  Deno.test(`EventLoop.${mode}: its timers fire while an fd stays ready`, async () => {
    const loop = new EventLoop();
    const efd = createEventfd();
    signalEventfd(efd); // never drained: ready on every wait
    const expired = deadlineGuard(loop, 10_000);
    let busy = 0;
    loop.add(efd, C.EPOLLIN, () => {
      busy++;
      expired();
    });
    const fired: string[] = [];
    loop.setTimeout(() => fired.push("b"), 20);
    loop.setTimeout(() => fired.push("a"), 5);
    loop.setTimeout(() => fired.push("never"), 15).cancel();
    loop.setTimeout(() => {
      fired.push("c");
      loop.stop();
    }, 30);
    try {
      await loop[mode]();
    } finally {
      closeFd(efd);
    }
    assert.deepEqual(fired, ["a", "b", "c"]);
    assert.ok(busy >= 1, "the ready fd was served meanwhile");
  });
}

Deno.test("EventLoop.run: Deno timers and promise continuations run while an fd stays ready", async () => {
  const loop = new EventLoop();
  const efd = createEventfd();
  signalEventfd(efd);
  const expired = deadlineGuard(loop, 10_000);
  let chained = 0;
  loop.add(efd, C.EPOLLIN, () => {
    expired();
    // a long chain of continuations started from a handler
    void (async () => {
      for (let i = 0; i < 50; i++) await null;
      chained++;
    })();
  });
  let fired = false;
  const t = setTimeout(() => {
    fired = true;
    loop.stop();
  }, 10);
  try {
    await loop.run();
  } finally {
    clearTimeout(t);
    closeFd(efd);
  }
  assert.ok(fired, "a 10 ms Deno timer did not fire within 10 s of saturation");
  assert.ok(chained > 0);
});

Deno.test("EventLoop.runBlocking: promise continuations finish before it blocks", async () => {
  const loop = new EventLoop();
  const efd = createEventfd();
  let done = false;
  loop.add(efd, C.EPOLLIN, () => {
    drainEventfd(efd);
    void (async () => {
      for (let i = 0; i < 1000; i++) await null;
      done = true;
      loop.stop(); // only reached if the chain ran before the next (blocking) wait
    })();
  });
  signalEventfd(efd);
  const guard = loop.setTimeout(() => loop.stop(), 10_000);
  await loop.runBlocking();
  guard.cancel();
  closeFd(efd);
  assert.ok(done);
});

Deno.test("EventLoop: a stopped loop closes its fds; timers after stop never fire", async () => {
  const loop = new EventLoop();
  let fired = 0;
  loop.setTimeout(() => {
    fired++;
    loop.stop();
    loop.setTimeout(() => fired++, 0);
  }, 1);
  await loop.runBlocking();
  assert.equal(fired, 1);
  assert.ok(loop.stopped);
});

Deno.test("EventLoop.runBlocking: a beforeWait hook bounds the wait or makes the loop poll", async () => {
  const loop = new EventLoop();
  const calls: number[] = [];
  let rounds = 0;
  // an outstanding async op of this thread (a log write): its completion needs the loop to turn
  let pending = true;
  void Promise.resolve().then(() => setTimeout(() => pending = false, 30));
  loop.beforeWait(() => {
    rounds++;
    calls.push(performance.now());
    return pending ? 2 : false;
  });
  const stop = loop.setTimeout(() => loop.stop(), 200);
  await loop.runBlocking();
  stop.cancel();
  assert.equal(
    pending,
    false,
    "the Deno timer of this thread ran while nothing else woke the loop",
  );
  assert.ok(rounds > 2, `${rounds} rounds`);
});
