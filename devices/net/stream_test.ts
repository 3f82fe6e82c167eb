import assert from "node:assert/strict";
import { closeFd, errno, libc } from "../../sys/ffi.ts";
import { Errno } from "../../sys/errno.ts";
import { connectUnix, socketPair } from "../../sys/socket.ts";
import { encodeFrame, FramingError, StreamDecoder } from "./stream_codec.ts";
import { StreamBackend } from "./stream.ts";
import { readExactly, runningLoop, until, writeAll } from "./testing.ts";
import type { EventLoop } from "../../sys/event_loop.ts";
import { concatBytes } from "../../protocol/wire.ts";

function bytes(n: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

function collector() {
  const frames: Uint8Array[] = [];
  const links: boolean[] = [];
  return {
    frames,
    links,
    handlers: {
      receive: (f: Uint8Array) => frames.push(f),
      linkChanged: (u: boolean) => links.push(u),
    },
  };
}

/**
 * A stream backend on one end of a socketpair, attached to a collector; the test plays the peer
 * on the other end (`peer`). `canReceive` is the NIC's answer; `beforeAdopt` may wrap the loop.
 */
function rig(canReceive?: () => boolean, beforeAdopt?: (loop: EventLoop) => void) {
  const { loop, stop } = runningLoop();
  beforeAdopt?.(loop);
  const [ours, peer] = socketPair();
  const be = StreamBackend.adopt(loop, ours);
  const c = collector();
  be.attach(canReceive ? { ...c.handlers, canReceive } : c.handlers);
  let peerOpen = true;
  const hangUp = () => {
    if (peerOpen) closeFd(peer);
    peerOpen = false;
  };
  return {
    be,
    c,
    peer,
    hangUp,
    async [Symbol.asyncDispose]() {
      hangUp();
      be.close();
      await stop();
    },
  };
}

/** The frames as QEMU's stream framing puts them on the wire, back to back. */
function wireOf(frames: readonly Uint8Array[]): Uint8Array {
  return concatBytes(frames.map(encodeFrame));
}

Deno.test("stream codec: 4-byte big-endian length prefix, any chunking, limits", () => {
  const a = bytes(70), b = bytes(1500, 7);
  const enc = encodeFrame(a);
  assert.deepEqual([...enc.subarray(0, 4)], [0, 0, 0, 70]);
  const stream = new Uint8Array([...enc, 0, 0, 0, 0, ...encodeFrame(b)]);
  for (const step of [1, 3, 4, 5, 100, stream.length]) {
    const out: Uint8Array[] = [];
    const d = new StreamDecoder();
    for (let i = 0; i < stream.length; i += step) {
      d.push(stream.subarray(i, i + step), (f) => out.push(f));
    }
    assert.deepEqual(out, [a, b], `chunks of ${step}`);
    assert.ok(d.idle);
  }
  const d = new StreamDecoder(2000);
  assert.throws(() => d.push(Uint8Array.of(0, 0, 0x10, 0), () => {}), FramingError);
});

Deno.test("stream backend over a socketpair speaks QEMU's framing both ways", async () => {
  await using r = rig();
  const { be, c, peer } = r;
  assert.ok(be.linkUp);
  const f1 = bytes(60), f2 = bytes(9000, 3);
  const wire = wireOf([f1, f2]);
  for (let i = 0; i < wire.length; i += 777) await writeAll(peer, wire.subarray(i, i + 777));
  await until(() => c.frames.length === 2, "two frames");
  assert.deepEqual(c.frames, [f1, f2]);
  const out = bytes(1514, 9);
  assert.ok(be.send(out));
  const got = await readExactly(peer, 4 + out.length);
  assert.deepEqual(got, encodeFrame(out));
  assert.equal(be.stats.txFrames, 1);
  assert.equal(be.stats.rxFrames, 2);
  r.hangUp();
  await until(() => !be.linkUp, "link down after the peer left");
  assert.deepEqual(c.links, [false]);
  assert.ok(!be.send(out), "no peer: dropped");
});

Deno.test("stream backend: a bad length ends the connection", async () => {
  await using r = rig();
  await writeAll(r.peer, Uint8Array.of(0x7f, 0xff, 0xff, 0xff));
  await until(() => !r.be.linkUp, "disconnect on a framing error");
});

Deno.test("stream backend: a large burst is queued (partial writes) and arrives intact", async () => {
  await using r = rig();
  const { be, peer } = r;
  const frames = Array.from({ length: 600 }, (_, i) => bytes(1514, i));
  let accepted = 0;
  for (const f of frames) if (be.send(f)) accepted++;
  assert.equal(accepted, 600, "kernel buffer plus 1 MiB queue hold the burst");
  assert.ok(be.congested, "over the high-water mark");
  const waiting = be.writable();
  const d = new StreamDecoder();
  const got: Uint8Array[] = [];
  while (got.length < 600) {
    d.push(await readExactly(peer, 1518), (f) => got.push(f));
  }
  await waiting;
  assert.deepEqual(got, frames);
  assert.ok(!be.congested);
});

Deno.test("stream backend: server and client on a path, reconnect after the server restarts", async () => {
  const { loop, stop } = runningLoop();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/net.sock`;
  const s = collector(), k = collector();
  let server = StreamBackend.open(loop, { path, server: true });
  server.attach(s.handlers);
  const client = StreamBackend.open(loop, { path, server: false, reconnectMs: 20 });
  client.attach(k.handlers);
  try {
    await until(() => server.linkUp && client.linkUp, "connected");
    client.send(bytes(100));
    server.send(bytes(200, 5));
    await until(() => s.frames.length === 1 && k.frames.length === 1, "frames both ways");
    assert.deepEqual(s.frames[0], bytes(100));
    assert.deepEqual(k.frames[0], bytes(200, 5));
    // A second client waits in the backlog while the first is served.
    const extra = connectUnix(path);
    server.close();
    await until(() => !client.linkUp, "client sees the server go");
    closeFd(extra);
    server = StreamBackend.open(loop, { path, server: true });
    server.attach(s.handlers);
    await until(() => client.linkUp && server.linkUp, "client reconnected");
    client.send(bytes(50));
    await until(() => s.frames.length === 2, "frame after reconnect");
    assert.deepEqual(k.links, [false, true], "connected before attach, then down and up");
  } finally {
    client.close();
    server.close();
    await stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Writes as much of `bytes` as the socket takes now; returns the count (0 when it is full). */
function writeSome(fd: number, bytes: Uint8Array): number {
  const n = Number(libc.write(fd, bytes, BigInt(bytes.length)));
  if (n >= 0) return n;
  assert.equal(errno(), Errno.EAGAIN, "the peer's write fails only for a full socket");
  return 0;
}

Deno.test("stream backend: while the NIC cannot receive the socket is left unread; the peer backs up", async () => {
  let open = false;
  await using r = rig(() => open);
  const { be, c, peer } = r;
  const frames = Array.from({ length: 2000 }, (_, i) => bytes(1000, i));
  const wire = wireOf(frames);
  // The peer writes until the socket is full: nobody reads it.
  let sent = 0;
  for (let n; sent < wire.length && (n = writeSome(peer, wire.subarray(sent))) > 0;) sent += n;
  assert.ok(sent < wire.length, `the socket took all ${wire.length} bytes`);
  await until(() => be.receivePaused, "paused");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(writeSome(peer, wire.subarray(sent)), 0, "still full: nothing was read");
  assert.equal(c.frames.length, 0);
  assert.equal(be.heldFrames, 0, "nothing read ahead");
  assert.equal(be.stats.rxPauses, 1);
  // The NIC can take frames again: all arrive, in order, while the peer writes the rest.
  open = true;
  be.resumeReceive();
  assert.ok(!be.receivePaused);
  await writeAll(peer, wire.subarray(sent));
  await until(() => c.frames.length === frames.length, "all frames");
  assert.deepEqual(c.frames, frames);
  assert.equal(be.stats.rxFrames, frames.length);
});

Deno.test("stream backend: frames of one read beyond what the NIC takes are held, in order", async () => {
  let limit = 10;
  await using r = rig(() => r.c.frames.length < limit);
  const { be, c, peer } = r;
  const frames = Array.from({ length: 50 }, (_, i) => bytes(100, i));
  await writeAll(peer, wireOf(frames));
  await until(() => be.receivePaused && c.frames.length === 10, "ten frames, then a pause");
  assert.equal(be.heldFrames, 40);
  limit = 30;
  be.resumeReceive();
  assert.equal(c.frames.length, 30);
  assert.ok(be.receivePaused, "still holding frames: not reading yet");
  limit = Infinity;
  be.resumeReceive();
  assert.ok(!be.receivePaused);
  assert.deepEqual(c.frames, frames);
  // Reading goes on after the held frames.
  await writeAll(peer, encodeFrame(bytes(60, 99)));
  await until(() => c.frames.length === 51, "the next frame");
});

Deno.test("stream backend: a peer hanging up while paused does not spin the loop; its frames still come", async () => {
  // Count readiness callbacks; a spinning loop would starve timers, so a fuse ends it.
  let wakeups = 0;
  let open = false;
  await using r = rig(() => open, (loop) => {
    const add = loop.add.bind(loop);
    loop.add = (fd, events, handler) =>
      add(fd, events, (ev) => ++wakeups > 1000 ? r.be.close() : handler(ev));
  });
  const { be, c } = r;
  const frames = [bytes(100, 1), bytes(200, 2)];
  await writeAll(r.peer, wireOf(frames));
  await until(() => be.receivePaused, "paused");
  r.hangUp();
  const before = wakeups;
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(wakeups - before < 3, `${wakeups - before} wake-ups after the hang-up`);
  assert.ok(be.linkUp, "the hang-up is not seen before the data before it is read");
  open = true;
  be.resumeReceive();
  await until(() => !be.linkUp, "link down after the frames");
  assert.deepEqual(c.frames, frames);
  assert.deepEqual(c.links, [false]);
});

Deno.test("stream backend: a peer hanging up while paused with a send queue is seen at once", async () => {
  await using r = rig(() => false);
  const { be, c } = r;
  await writeAll(r.peer, encodeFrame(bytes(100)));
  await until(() => be.receivePaused, "paused");
  while (be.send(bytes(1514)) && !be.congested); // the peer reads nothing: a queue builds up
  assert.ok(be.congested);
  const drained = be.writable();
  r.hangUp();
  await until(() => !be.linkUp, "link down (a write failed)");
  await drained;
  assert.deepEqual(c.links, [false]);
});
