/**
 * The e1000's lifecycle hooks: pausing at descriptor and frame boundaries, and moving its state
 * (registers, the transmit backlog and a half-assembled frame, the receive packet buffer and the
 * frames its backend held) into another NIC on the same guest memory, each frame exactly once;
 * restored state is validated.
 */
import assert from "node:assert/strict";
import { Errno, ErrnoError } from "../../sys/errno.ts";
import { decodeRecord, encodeRecord } from "../../protocol/record.ts";
import { FakeContext } from "../virtio/testing/fake_memory.ts";
import { DmaPaused, type GuestMemory } from "../../dma/guest_memory.ts";
import { ICR, R, RCTL, TXD_CMD } from "../../spec/e1000.ts";
import { E1000 } from "./device.ts";
import {
  ADDR,
  legacy,
  linkUp,
  putTx,
  rd,
  rig,
  RIG_MAC,
  settle,
  setupRx,
  setupTx,
  wr,
} from "./testing.ts";

type Rig = ReturnType<typeof rig>;

/** A destination NIC on the same guest memory as `src`, with its own cable. */
function destination(src: Rig): Rig {
  return rig(src.mem);
}

/** Saves `src` (paused) and loads the state into `dst` (paused) as a stream would carry it. */
async function move(src: E1000, dst: E1000): Promise<void> {
  await src.pause();
  const state = decodeRecord(encodeRecord(src.save()));
  await dst.pause();
  dst.restore(state, src.stateVersion);
  assert.deepEqual(encodeRecord(dst.save()), encodeRecord(state), "save after restore: same bytes");
  dst.resume();
}

/** A frame of `len` bytes numbered `n`, written to the guest at `addr`. */
function payload(r: Rig, addr: number, n: number, len: number): Uint8Array {
  const f = new Uint8Array(len).map((_, i) => (n * 7 + i) & 0xff);
  f.set([2, 0, 0, 0, 0, 2, ...RIG_MAC, 0x88, 0xb5]);
  r.mem.ram.set(f, addr);
  return f;
}

const EOP = TXD_CMD.EOP | TXD_CMD.IFCS | TXD_CMD.RS;

Deno.test("e1000 lifecycle: the backlog of a congested backend and the pending descriptors move", async () => {
  const a = rig();
  linkUp(a.dev);
  setupTx(a, 16);
  a.backend.setCongested(true);
  const frames = [0, 1, 2].map((n) => payload(a, ADDR.TX_BUF + n * 2048, n, 200 + n));
  frames.forEach((f, n) =>
    putTx(a, n, { addr: ADDR.TX_BUF + n * 2048, lower: legacy(f.length, EOP) })
  );
  wr(a.dev, R.TDT, 3);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(a.dev.tx.backlog, 1, "the first frame waits for the backend");
  const b = destination(a);
  await move(a.dev, b.dev);
  await settle(b.dev);
  assert.deepEqual(b.wire.received, frames, "each frame once, in order, from the destination");
  assert.equal(a.wire.received.length, 0, "the source sent nothing");
  assert.equal(rd(b.dev, R.TDH), 3);
});

Deno.test("e1000 lifecycle: a half-assembled frame moves and completes on the destination", async () => {
  const a = rig();
  linkUp(a.dev);
  setupTx(a, 16);
  const whole = payload(a, ADDR.TX_BUF, 9, 900);
  const parts = [[0, 300], [300, 300], [600, 300]];
  parts.forEach(([at, len], i) =>
    putTx(a, i, { addr: ADDR.TX_BUF + at, lower: legacy(len, i === 2 ? EOP : TXD_CMD.IFCS) })
  );
  wr(a.dev, R.TDT, 2); // the driver has not published the last descriptor yet
  await settle(a.dev);
  assert.equal(rd(a.dev, R.TDH), 2);
  const b = destination(a);
  await move(a.dev, b.dev);
  wr(b.dev, R.TDT, 3);
  await settle(b.dev);
  assert.deepEqual(b.wire.received, [whole], "the frame carries the bytes of all three");
  assert.equal(a.wire.received.length, 0);
});

Deno.test("e1000 lifecycle: frames waiting in the NIC and held by its backend move", async () => {
  const count = 8; // RDLEN keeps multiples of 128 bytes
  const a = rig();
  linkUp(a.dev);
  setupRx(a, count, RCTL.BAM);
  const sent = Array.from({ length: 100 }, (_, n) => {
    const f = new Uint8Array(1000).map((_, i) => (n + i) & 0xff);
    f.set([...RIG_MAC, 2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
    return f;
  });
  for (const f of sent) a.wire.send(f);
  await settle(a.dev);
  assert.equal(rd(a.dev, R.RDH), count - 1, "the ring is full");
  assert.ok(
    a.dev.rx.pending >= 1 && a.backend.heldFrames >= 1,
    "some wait in the NIC, some in the backend",
  );
  const b = destination(a);
  await move(a.dev, b.dev);
  const got: Uint8Array[] = [];
  let next = 0;
  for (let round = 0; round < 100 && got.length < sent.length; round++) {
    const head = rd(b.dev, R.RDH);
    while (next !== head) {
      const d = new DataView(a.mem.ram.buffer, ADDR.RX_RING + next * 16, 16);
      got.push(
        a.mem.ram.slice(
          ADDR.RX_BUF + next * 2048,
          ADDR.RX_BUF + next * 2048 + d.getUint16(8, true) - 4,
        ),
      );
      d.setUint8(12, 0);
      next = (next + 1) % count;
    }
    wr(b.dev, R.RDT, (head + count - 1) % count);
    await settle(b.dev);
  }
  assert.deepEqual(got, sent, "every frame once, in order");
});

Deno.test("e1000 lifecycle: paused, the NIC holds link changes and interrupts until resume", async () => {
  const a = rig();
  linkUp(a.dev);
  await settle(a.dev);
  wr(a.dev, R.IMS, ICR.LSC);
  rd(a.dev, R.ICR);
  const triggers = a.ctx.triggers.length;
  await a.dev.pause();
  a.backend.setLink(false);
  await settle(a.dev);
  assert.equal(a.dev.linkUp, true, "no link change while paused");
  assert.equal(a.ctx.triggers.length, triggers, "no interrupt while paused");
  a.dev.resume();
  assert.equal(a.dev.linkUp, false);
  assert.ok(a.ctx.triggers.length > triggers, "LSC after resume");
});

Deno.test("e1000 lifecycle: invalid state is refused with EINVAL and changes nothing", async () => {
  const a = rig();
  linkUp(a.dev);
  setupTx(a, 16);
  await a.dev.pause();
  const good = decodeRecord(encodeRecord(a.dev.save())) as Record<string, unknown>;
  const b = destination(a);
  await b.dev.pause();
  const before = encodeRecord(b.dev.save());
  const edit = (f: (s: Record<string, unknown>) => void) => {
    const s = decodeRecord(encodeRecord(good as never)) as Record<string, unknown>;
    f(s);
    return s;
  };
  const regs = (s: Record<string, unknown>) => s.regs as Uint8Array;
  const rx = (s: Record<string, unknown>) => s.rx as Record<string, unknown>;
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["truncated registers", edit((s) => (s.regs = regs(s).subarray(4))), /regs: \d+ bytes/],
    [
      "read-only bits of RDLEN",
      edit((s) => {
        const v = new DataView(regs(s).buffer, regs(s).byteOffset);
        // RDLEN is the 35th entry of the table: find it by value would be brittle; flip all.
        for (let i = 0; i < regs(s).length; i += 4) v.setUint32(i, 0xffffffff, true);
      }),
      /changes read-only bits/,
    ],
    [
      "another station address",
      edit((s) => {
        ((s.eeprom as Record<string, unknown>).words as Uint8Array)[0] ^= 1;
      }),
      /another EEPROM/,
    ],
    [
      "a packet buffer beyond its size",
      edit((s) => {
        rx(s).fifo = Array.from({ length: 60 }, () => ({
          data: new Uint8Array(1500),
          status: 0,
          errors: 0,
          csum: 0,
          special: 0,
          waitCounted: false,
        }));
      }),
      /bytes in a packet buffer/,
    ],
    [
      "a runt in the packet buffer",
      edit((s) => {
        rx(s).fifo = [{
          data: new Uint8Array(4),
          status: 0,
          errors: 0,
          csum: 0,
          special: 0,
          waitCounted: false,
        }];
      }),
      /shorter than an Ethernet header/,
    ],
    ["an oversized held frame", edit((s) => (s.wire = [new Uint8Array(70000)])), /not a frame/],
    [
      "an interrupt cause that does not exist",
      edit((s) => {
        (s.irq as Record<string, unknown>).icr = 1 << 30;
      }),
      /undefined cause bits/,
    ],
    ["an unknown field", edit((s) => (s.extra = true)), /unknown field/],
  ];
  for (const [what, state, re] of cases) {
    assert.throws(
      () => b.dev.restore(state, 1),
      (e) => e instanceof ErrnoError && e.errno === Errno.EINVAL && re.test(e.message),
      what,
    );
    assert.deepEqual(encodeRecord(b.dev.save()), before, `${what}: nothing changed`);
  }
  assert.throws(() => b.dev.restore(good, 2), (e) => (e as ErrnoError).errno === Errno.ENOTSUP);
  b.dev.restore(good, 1);
  assert.deepEqual(
    b.dev.guestRegions().map((r) => [r.addr, r.len, r.what]),
    [[BigInt(ADDR.TX_RING), 16 * 16, "transmit ring"]],
  );
});

/** Guest memory that defers every access (as during a migration pause) while `deferred`. */
function deferring(r: Rig) {
  const mem = r.mem;
  const state = { deferred: false };
  const check = () => {
    if (state.deferred) throw new DmaPaused();
  };
  const wrapped: GuestMemory = {
    map: (a, l, w) => (check(), mem.map(a, l, w !== false)),
    transfer: (a, l, w, fn) => (check(), mem.transfer(a, l, w !== false, fn)),
    transferv: (rs, w, fn) => (check(), mem.transferv(rs, w !== false, fn)),
    read: async (a, d) => (await Promise.resolve(), check(), mem.read(a, d)),
    write: (a, s) => mem.write(a, s), // posted: goes out even while deferred
  };
  const dev = new E1000({ backend: r.backend, mac: RIG_MAC });
  dev.attach(new FakeContext(wrapped));
  return { dev, state };
}

Deno.test("e1000 lifecycle: accesses deferred by a pause are redone, never a stopped ring", async () => {
  const r = rig();
  const d = deferring(r);
  const nic = { dev: d.dev, mem: r.mem };
  linkUp(d.dev);
  setupTx(nic, 16);
  setupRx(nic, 8, RCTL.BAM);
  const f = payload(r, ADDR.TX_BUF, 1, 100);
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(f.length, EOP) });
  d.state.deferred = true;
  wr(d.dev, R.TDT, 1);
  const incoming = new Uint8Array(200).fill(7);
  incoming.set([...RIG_MAC, 2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
  r.wire.send(incoming);
  await settle(d.dev);
  assert.equal(d.dev.tx.stopped, undefined, "the transmit ring is not stopped");
  assert.equal(d.dev.rx.stopped, undefined, "the receive ring is not stopped");
  assert.equal(rd(d.dev, R.TDH), 0, "the descriptor is still to do");
  assert.equal(r.wire.received.length, 0);
  assert.equal(d.dev.rx.pending, 1, "the frame waits in the packet buffer");
  d.state.deferred = false;
  await d.dev.pause(); // as a migration's pause and resume would
  d.dev.resume();
  await settle(d.dev);
  assert.deepEqual(r.wire.received, [f], "sent once");
  assert.equal(rd(d.dev, R.RDH), 1, "received once");
  assert.deepEqual(r.mem.ram.subarray(ADDR.RX_BUF, ADDR.RX_BUF + 200), incoming);
});
