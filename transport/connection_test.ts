import assert from "node:assert/strict";
import { Connection, type Message } from "./connection.ts";
import { EventLoop } from "../sys/event_loop.ts";
import { check, closeFd, libc } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";
import { Errno } from "../sys/errno.ts";
import { Messenger, socketPair } from "../sys/socket.ts";
import { encodeHeader, Flags } from "../protocol/header.ts";

function message(id: number, cmd: number, payloadLen: number, fill = id): Uint8Array {
  const m = new Uint8Array(16 + payloadLen).fill(fill);
  encodeHeader({ id, cmd, size: m.length, flags: Flags.TYPE_COMMAND, error: 0 }, m);
  return m;
}

function newEventfd(): number {
  return check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC));
}

/** Runs a loop with a Connection on one end of a socketpair until `want` messages arrived. */
async function receive(
  feed: (peer: Messenger) => void,
  want: number,
  maxMsg = 4096,
): Promise<{ msgs: (Message & { copy: Uint8Array })[]; closed: Error | undefined | null }> {
  const [a, b] = socketPair();
  const loop = new EventLoop();
  const msgs: (Message & { copy: Uint8Array })[] = [];
  let closed: Error | undefined | null = null;
  const conn = new Connection(loop, a, maxMsg, {
    onMessage: (m) => {
      msgs.push({ ...m, copy: m.payload.slice() });
      if (msgs.length === want) loop.stop();
    },
    onClose: (e) => {
      closed = e;
      loop.stop();
    },
  });
  const peer = new Messenger(b);
  feed(peer);
  const timer = setTimeout(() => loop.stop(), 5000);
  await loop.run();
  clearTimeout(timer);
  const result = { msgs, closed };
  conn.close();
  closeFd(b);
  return result;
}

/** Sends `bytes` in `step`-byte writes, waiting while the socket is full. */
async function trickle(peer: Messenger, bytes: Uint8Array, step: number): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    const n = peer.send([bytes.subarray(off, Math.min(off + step, bytes.length))]);
    if (n > 0) off += n;
    else await new Promise((r) => setTimeout(r, 1));
  }
}

Deno.test("messages split across many writes are reassembled in order", async () => {
  const all = new Uint8Array([...message(1, 9, 100), ...message(2, 9, 3000), ...message(3, 4, 0)]);
  const { msgs } = await receive((peer) => void trickle(peer, all, 7), 3);
  assert.deepEqual(msgs.map((m) => [m.header.id, m.payload.length]), [[1, 100], [2, 3000], [
    3,
    0,
  ]]);
  assert.ok(msgs[1].copy.every((b) => b === 2));
});

Deno.test("fds are attributed to the message they were sent with", async () => {
  const e1 = newEventfd(), e2 = newEventfd();
  const { msgs } = await receive((peer) => {
    peer.send([message(1, 9, 8)]);
    peer.send([message(2, 8, 20)], [e1, e2]);
    peer.send([message(3, 9, 8)]);
  }, 3);
  closeFd(e1);
  closeFd(e2);
  assert.deepEqual(msgs.map((m) => m.fds.length), [0, 2, 0]);
  msgs[1].fds.forEach(closeFd);
});

Deno.test("an oversized message is skipped and reported, the stream goes on", async () => {
  const { msgs, closed } = await receive((peer) => {
    peer.send([message(1, 10, 5000)]);
    peer.send([message(2, 4, 16)]);
  }, 2);
  assert.equal(closed, null);
  assert.equal(msgs[0].header.id, 1);
  assert.equal(msgs[0].error?.errno, Errno.E2BIG);
  assert.equal(msgs[1].header.id, 2);
  assert.equal(msgs[1].error, undefined);
});

Deno.test("a size below the header size closes the connection", async () => {
  const bad = message(1, 1, 0);
  new DataView(bad.buffer).setUint32(4, 8, true);
  const { msgs, closed } = await receive((peer) => peer.send([bad]), 1);
  assert.equal(msgs.length, 0);
  assert.ok(closed instanceof Error);
});

Deno.test("large replies are queued and fully delivered when the peer drains", async () => {
  const [a, b] = socketPair();
  const loop = new EventLoop();
  const conn = new Connection(loop, a, 1 << 20, { onMessage: () => {}, onClose: () => {} });
  const payload = new Uint8Array(4 << 20).map((_, i) => i & 0xff);
  conn.send({ id: 7, cmd: 12, flags: 0, error: 0 }, [payload]);
  payload.fill(0); // the connection must have copied what it could not send yet
  const peer = new Messenger(b);
  const got = new Uint8Array(16 + payload.length);
  let n = 0;
  const timer = setTimeout(() => loop.stop(), 10000);
  loop.add(b, C.EPOLLIN, () => {
    const r = peer.recv(got.subarray(n));
    if (r.n > 0) n += r.n;
    if (n === got.length) loop.stop();
  });
  await loop.run();
  clearTimeout(timer);
  conn.close();
  closeFd(b);
  assert.equal(n, got.length);
  assert.ok(got.subarray(16).every((v, i) => v === (i & 0xff)));
});
