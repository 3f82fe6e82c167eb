/**
 * Unit tests of the test client against a scripted peer on the other end of a socketpair (no
 * vfud involved): request/reply matching, error replies, the reply-size rule, DMA serving from
 * plain and memfd guest RAM, eventfd passing and waiting, raw sends and disconnection.
 */
import assert from "node:assert/strict";
import { Command, Flags, type Header } from "../protocol/header.ts";
import { DmaRead, DmaWrite } from "../protocol/dma.ts";
import { DeviceGetInfo } from "../protocol/device_info.ts";
import { IrqIndex, IrqSetFlags } from "../protocol/irq.ts";
import { Connection, type Message } from "../transport/connection.ts";
import { check, closeFd, libc } from "../sys/ffi.ts";
import { EventLoop, signalEventfd } from "../sys/event_loop.ts";
import { C } from "../sys/layout.ts";
import { socketPair } from "../sys/socket.ts";
import {
  ArrayRam,
  ClientClosedError,
  Errno,
  EventFd,
  MemfdRam,
  openFds,
  QEMU_CAPS_JSON,
  QEMU_VERSION_MESSAGE_SIZE,
  randomBytes,
  VfioUserClient,
  VfioUserRequestError,
  WaitTimeoutError,
} from "./mod.ts";

interface Got {
  header: Header;
  payload: Uint8Array;
  fds: number[];
}

/** The scripted peer: records every message; `onCommand` answers. */
class Peer {
  readonly loop = new EventLoop();
  readonly conn: Connection;
  readonly got: Got[] = [];
  onCommand: (m: Got) => void = (m) => this.reply(m.header);
  closed = false;
  readonly #done: Promise<void>;

  constructor(fd: number) {
    this.conn = new Connection(this.loop, fd, 8 << 20, {
      onMessage: (m: Message) => {
        const g = { header: m.header, payload: m.payload.slice(), fds: m.fds };
        this.got.push(g);
        if ((m.header.flags & Flags.TYPE_MASK) === Flags.TYPE_COMMAND) this.onCommand(g);
        else this.onReply?.(g);
      },
      onClose: () => (this.closed = true),
    });
    this.#done = this.loop.run();
  }

  onReply: ((m: Got) => void) | undefined;

  reply(h: Header, payload?: Uint8Array, error = 0): void {
    const flags = Flags.TYPE_REPLY | (error ? Flags.ERROR : 0);
    this.conn.send({ id: h.id, cmd: h.cmd, flags, error }, payload ? [payload] : []);
  }

  command(id: number, cmd: number, payload: Uint8Array): void {
    this.conn.send({ id, cmd, flags: Flags.TYPE_COMMAND, error: 0 }, [payload]);
  }

  async close(): Promise<void> {
    if (!this.conn.closed) this.conn.close();
    for (const g of this.got) g.fds.forEach(closeFd);
    this.loop.stop();
    await this.#done;
  }
}

function pair(opts = {}): { client: VfioUserClient; peer: Peer } & AsyncDisposable {
  const [a, b] = socketPair();
  const client = new VfioUserClient(a, { timeoutMs: 10_000, ...opts });
  const peer = new Peer(b);
  return {
    client,
    peer,
    async [Symbol.asyncDispose]() {
      await client.close();
      await peer.close();
    },
  };
}

/** Waits until the peer has received `n` messages (bounded). */
async function received(peer: Peer, n: number): Promise<void> {
  for (let i = 0; i < 2000 && peer.got.length < n; i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(peer.got.length >= n, `peer got ${peer.got.length} of ${n} messages`);
}

Deno.test("client: replies are matched by id and command, in any order", async () => {
  await using p = pair();
  const held: Got[] = [];
  p.peer.onCommand = (m) => {
    held.push(m);
    if (held.length === 3) {
      for (const h of held.reverse()) {
        p.peer.reply(
          h.header,
          DeviceGetInfo.encodeReply({ flags: 3, numRegions: h.header.id, numIrqs: 5 }),
        );
      }
    }
  };
  const [a, b, c] = await Promise.all([p.client.getInfo(), p.client.getInfo(), p.client.getInfo()]);
  assert.deepEqual(
    [a.numRegions, b.numRegions, c.numRegions],
    held.map((h) => h.header.id).reverse(),
  );
  assert.equal(new Set([a.numRegions, b.numRegions, c.numRegions]).size, 3);
  assert.deepEqual(p.client.violations, []);
});

Deno.test("client: an error reply rejects with its errno", async () => {
  await using p = pair();
  p.peer.onCommand = (m) => p.peer.reply(m.header, undefined, Errno.EEXIST);
  const e = await p.client.dmaMap({ iova: 0n, size: 4096n }).catch((e) => e);
  assert.ok(e instanceof VfioUserRequestError);
  assert.equal(e.errno, Errno.EEXIST);
  assert.equal(e.cmd, Command.DMA_MAP);
  assert.equal(p.client.dma.maps.length, 0, "a refused map is not recorded");
});

Deno.test("client: VERSION is QEMU's 214-byte message and a longer reply is a violation", async () => {
  await using p = pair();
  p.peer.onCommand = (m) => {
    // Echo the request payload plus one byte too many.
    const big = new Uint8Array(m.payload.length + 1);
    big.set(m.payload.subarray(0, m.payload.length - 1));
    big[big.length - 2] = 0x20; // JSON whitespace before the NUL
    p.peer.reply(m.header, big);
  };
  const v = await p.client.version();
  assert.equal(p.peer.got[0].header.size, QEMU_VERSION_MESSAGE_SIZE);
  assert.equal(new TextDecoder().decode(p.peer.got[0].payload.subarray(4, -1)), QEMU_CAPS_JSON);
  assert.equal(v.major, 0);
  assert.equal(p.client.violations.length, 1);
  assert.match(p.client.violations[0], /exceeds/);
});

Deno.test("client: serves DMA_READ and DMA_WRITE from message-based guest RAM", async () => {
  await using p = pair();
  const ram = new ArrayRam(64 * 1024);
  ram.bytes.set(randomBytes(ram.size));
  const before = ram.bytes.slice();
  await p.client.dmaMap({ iova: 0x10000n, size: BigInt(ram.size), backing: ram.bytes });
  assert.equal(p.peer.got[0].fds.length, 0, "no fd with a message-based map");
  const replies: Got[] = [];
  p.peer.onReply = (m) => replies.push(m);
  // DMA_READ of 300 bytes at 0x10010, then DMA_WRITE of 5 bytes at 0x10020.
  p.peer.command(7, Command.DMA_READ, DmaRead.encodeRequest({ address: 0x10010n, count: 300n }));
  p.peer.command(
    8,
    Command.DMA_WRITE,
    DmaWrite.encodeRequest({ address: 0x10020n, data: Uint8Array.of(1, 2, 3, 4, 5) }),
  );
  await received(p.peer, 3);
  for (let i = 0; i < 1000 && replies.length < 2; i++) await new Promise((r) => setTimeout(r, 2));
  assert.equal(replies.length, 2);
  const r = DmaRead.decodeReply(replies[0].payload);
  assert.equal(replies[0].header.id, 7);
  assert.equal(r.address, 0x10010n);
  assert.deepEqual(r.data, before.slice(0x10, 0x10 + 300));
  assert.equal(replies[1].header.id, 8);
  assert.equal(replies[1].payload.length, 12, "spec layout: address u64, count u32");
  assert.deepEqual(DmaWrite.decodeReply(replies[1].payload), { address: 0x10020n, count: 5n });
  assert.deepEqual(ram.bytes.slice(0x20, 0x25), Uint8Array.of(1, 2, 3, 4, 5));
  assert.deepEqual(p.client.dmaStats, {
    reads: 1,
    writes: 1,
    readBytes: 300,
    writeBytes: 5,
    errors: 0,
  });
  assert.deepEqual(p.client.violations, []);
});

Deno.test("client: DMA outside the maps or into a read-only map gets an error reply", async () => {
  await using p = pair();
  const ram = new ArrayRam(4096);
  await p.client.dmaMap({ iova: 0x1000n, size: 4096n, flags: 1, backing: ram.bytes });
  const replies: Got[] = [];
  p.peer.onReply = (m) => replies.push(m);
  p.peer.command(1, Command.DMA_READ, DmaRead.encodeRequest({ address: 0x9000n, count: 4n }));
  p.peer.command(2, Command.DMA_READ, DmaRead.encodeRequest({ address: 0x1ff0n, count: 32n }));
  p.peer.command(
    3,
    Command.DMA_WRITE,
    DmaWrite.encodeRequest({ address: 0x1000n, data: Uint8Array.of(9) }),
  );
  for (let i = 0; i < 1000 && replies.length < 3; i++) await new Promise((r) => setTimeout(r, 2));
  assert.deepEqual(
    replies.map((r) => [r.header.id, r.header.flags & Flags.ERROR, r.header.error, r.header.size]),
    [
      [1, Flags.ERROR, Errno.EFAULT, 16],
      [2, Flags.ERROR, Errno.EFAULT, 16],
      [3, Flags.ERROR, Errno.EPERM, 16],
    ],
  );
  assert.equal(ram.bytes[0], 0);
  assert.equal(p.client.violations.length, 3);
});

Deno.test("client: memfd guest RAM is shared with the peer through the DMA_MAP fd", async () => {
  await using p = pair();
  const ram = new MemfdRam(1 << 20);
  try {
    await p.client.mapRam(ram);
    const fd = p.peer.got[0].fds[0];
    assert.equal(p.peer.got[0].fds.length, 1);
    const ptr = libc.mmap(null, BigInt(ram.size), C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0n);
    assert.ok(ptr !== null && Deno.UnsafePointer.value(ptr) !== 0xffff_ffff_ffff_ffffn);
    const peerView = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr!, ram.size));
    peerView.set([0xde, 0xad], 0x1234);
    assert.deepEqual(ram.bytes.slice(0x1234, 0x1236), Uint8Array.of(0xde, 0xad));
    ram.bytes[0xfffff] = 0x5a;
    assert.equal(peerView[0xfffff], 0x5a);
    libc.munmap(ptr, BigInt(ram.size));
  } finally {
    ram.close();
  }
});

Deno.test("client: eventfds passed with SET_IRQS wake EventFd.wait; take() reads without blocking", async () => {
  await using p = pair();
  const ev = new EventFd();
  try {
    const flags = IrqSetFlags.DATA_EVENTFD | IrqSetFlags.ACTION_TRIGGER;
    await p.client.setIrqs({ index: IrqIndex.MSIX, flags, start: 0, count: 1, fds: [ev.fd] });
    const peerFd = p.peer.got[0].fds[0];
    assert.equal(ev.take(), 0n);
    const waiting = ev.wait(p.client.loop, 10_000);
    signalEventfd(peerFd);
    assert.equal(await waiting, 1n);
    assert.equal(ev.take(), 0n, "consumed");
    signalEventfd(peerFd);
    signalEventfd(peerFd);
    assert.equal(ev.take(), 2n);
    const e = await ev.wait(p.client.loop, 30).catch((e) => e);
    assert.ok(e instanceof WaitTimeoutError, "a wait on a silent eventfd ends at its bound");
  } finally {
    ev.close();
  }
});

Deno.test("client: posted commands get no reply; raw bytes and nextMessage", async () => {
  await using p = pair();
  p.peer.onCommand = () => {};
  const id = p.client.post(Command.REGION_WRITE, new Uint8Array(17));
  await received(p.peer, 1);
  assert.equal(p.peer.got[0].header.id, id);
  assert.equal(p.peer.got[0].header.flags, Flags.NO_REPLY);
  // A raw message with a lying size field arrives as sent.
  const raw = new Uint8Array(16);
  new DataView(raw.buffer).setUint32(4, 32, true);
  const tail = new Uint8Array(16).fill(7);
  await p.client.sendRaw(raw);
  await p.client.sendRaw(tail);
  await received(p.peer, 2);
  assert.equal(p.peer.got[1].header.size, 32);
  assert.deepEqual(p.peer.got[1].payload, tail);
  // nextMessage sees an unsolicited reply, which is also kept in `unsolicited`.
  const next = p.client.nextMessage();
  p.peer.reply({ id: 999, cmd: 4, size: 16, flags: 0, error: 0 });
  assert.equal((await next).header.id, 999);
  assert.equal(p.client.unsolicited.length, 1);
});

Deno.test("client: a raw send larger than the socket buffer waits for room", async () => {
  await using p = pair();
  const big = randomBytes(3 << 20);
  const v = new DataView(big.buffer);
  v.setUint16(0, 42, true);
  v.setUint16(2, 4, true);
  v.setUint32(4, big.length, true);
  v.setUint32(8, 0, true);
  p.peer.onCommand = (m) => p.peer.reply(m.header, Uint8Array.of(m.payload.length & 0xff));
  const r = await p.client.rawRequest(big);
  assert.equal(p.peer.got[0].payload.length, big.length - 16);
  assert.deepEqual(p.peer.got[0].payload, big.subarray(16));
  assert.equal(r.header.id, 42);
});

Deno.test("client: a raw send into a connection the peer closed ends the connection", async () => {
  await using p = pair();
  // The peer is gone before our own loop could see it: the write itself meets EPIPE. That is
  // the peer ending the connection (as a server does on broken framing), not a failure to
  // report as something else: the client is closed with that reason.
  p.peer.conn.close();
  const e = await p.client.sendRaw(new Uint8Array(64)).catch((e) => e);
  assert.ok(e instanceof ClientClosedError, String(e));
  assert.ok(p.client.isClosed);
  assert.equal((await p.client.closed)?.message, "sendmsg: Broken pipe (errno 32)");
  const e2 = await p.client.getInfo().catch((e) => e);
  assert.ok(e2 instanceof ClientClosedError, String(e2));
});

Deno.test("client: a raw send the peer cuts short by closing on its header ends the connection", async () => {
  await using p = pair();
  // Larger than the socket buffers: the peer reads the header (size 15 < 16: broken framing)
  // and closes while we still write; whichever of our writes or our reads meets the end first,
  // the raw send ends as a closed connection.
  const big = new Uint8Array(4 << 20);
  new DataView(big.buffer).setUint32(4, 15, true);
  const e = await p.client.sendRaw(big).catch((e) => e);
  assert.ok(e instanceof ClientClosedError, String(e));
  assert.ok(p.client.isClosed);
  assert.ok(p.peer.closed);
});

Deno.test("client: a raw send to a peer that stops reading times out, the connection still open", async () => {
  await using p = pair({ timeoutMs: 300 });
  p.peer.loop.stop(); // the peer keeps its socket open but never reads again
  const e = await p.client.sendRaw(new Uint8Array(4 << 20)).catch((e) => e);
  assert.ok(e instanceof WaitTimeoutError, String(e));
  assert.ok(!p.client.isClosed);
});

Deno.test("client: disconnection rejects pending requests and resolves `closed`", async () => {
  await using p = pair();
  p.peer.onCommand = () => p.peer.conn.close();
  const e = await p.client.getInfo().catch((e) => e);
  assert.ok(e instanceof ClientClosedError, String(e));
  assert.equal(await p.client.closed, undefined);
  assert.ok(p.client.isClosed);
  const e2 = await p.client.getInfo().catch((e) => e);
  assert.ok(e2 instanceof ClientClosedError);
});

function fdCount(): number {
  return openFds("self").length;
}

Deno.test("client: fds attached to a reply are closed and flagged unless taken", async () => {
  await using p = pair();
  const before = fdCount();
  const ev = check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC));
  p.peer.onCommand = (m) =>
    p.peer.conn.send({ id: m.header.id, cmd: m.header.cmd, flags: Flags.TYPE_REPLY, error: 0 }, [
      DeviceGetInfo.encodeReply({ flags: 3, numRegions: 9, numIrqs: 5 }),
    ], [ev]);
  await p.client.getInfo();
  closeFd(ev);
  assert.equal(fdCount(), before, "the received copy was closed");
  assert.equal(p.client.violations.length, 1);
  assert.match(p.client.violations[0], /carries 1 fds/);
});
