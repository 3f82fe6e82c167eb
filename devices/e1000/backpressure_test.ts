import assert from "node:assert/strict";
import { CTRL, ICR, R, RCTL, RXD_STA } from "../../spec/e1000.ts";
import { STATS } from "./regs.ts";
import { ADDR, descView, linkUp, rd, ready, rig, RIG_MAC, settle, setupRx, wr } from "./testing.ts";

type Rig = ReturnType<typeof rig>;

/** A NIC receiving into `count` buffers of `bufSize` with RCTL `rctl`. */
function receiving(count = 8, rctl: number = RCTL.BAM, bufSize = 2048): Rig {
  return ready({ rx: { count, rctl, bufSize } });
}

/** A frame to the rig's MAC carrying sequence number `seq` (bytes 14-17), `len` bytes long. */
function numbered(seq: number, len = 1000): Uint8Array {
  const f = new Uint8Array(len);
  f.set(RIG_MAC, 0);
  f.set([2, 0, 0, 0, 0, 1, 0x88, 0xb5], 6);
  new DataView(f.buffer).setUint32(14, seq);
  for (let i = 18; i < len; i++) f[i] = (seq + i) & 0xff;
  return f;
}

/**
 * A driver's receive loop: takes the completed descriptors from `next` up to RDH, checks that
 * each holds the next expected frame whole, and gives them all back (RDT = RDH - 1).
 */
function harvest(r: Rig, count: number, state: { next: number; seq: number }, len = 1000) {
  const head = rd(r.dev, R.RDH);
  let taken = 0;
  while (state.next !== head) {
    const d = descView(r, ADDR.RX_RING, state.next);
    assert.equal(d.getUint8(12) & (RXD_STA.DD | RXD_STA.EOP), RXD_STA.DD | RXD_STA.EOP);
    assert.equal(d.getUint16(8, true), len + 4);
    const at = ADDR.RX_BUF + state.next * 2048;
    assert.deepEqual(r.mem.ram.subarray(at, at + len), numbered(state.seq, len), `#${state.seq}`);
    d.setUint8(12, 0);
    state.seq++;
    state.next = (state.next + 1) % count;
    taken++;
  }
  wr(r.dev, R.RDT, (head + count - 1) % count);
  return taken;
}

Deno.test("RX backpressure: a burst beyond ring + packet buffer waits in the backend, none lost, in order", async () => {
  const count = 8;
  const r = receiving(count);
  // 48 KiB packet buffer (PBA) + 7 free descriptors hold about 55 frames of 1000 bytes.
  const N = 300;
  for (let i = 0; i < N; i++) r.wire.send(numbered(i));
  await settle(r.dev);
  assert.equal(rd(r.dev, R.RDH), count - 1, "the ring filled");
  assert.ok(r.backend.receivePaused, "the backend stopped handing frames over");
  assert.ok(r.dev.rx.starved);
  // Frames arrived faster than DMA took them: the packet buffer filled (not beyond), then the
  // backend held the rest.
  assert.ok(r.dev.rx.pending <= 48, `${r.dev.rx.pending} frames in the 48 KiB buffer`);
  assert.equal(r.dev.rx.pending + r.backend.heldFrames, N - (count - 1), "all the rest waits");
  assert.equal(rd(r.dev, STATS.RNBC), 1);
  assert.equal(rd(r.dev, STATS.MPC), 0);
  assert.equal(rd(r.dev, R.ICR) & ICR.RXO, 0, "no overrun");

  const state = { next: 0, seq: 0 };
  for (let round = 0; state.seq < N; round++) {
    assert.ok(round < 100, `stuck at frame ${state.seq}`);
    assert.ok(harvest(r, count, state) > 0, `progress in round ${round}`);
    await settle(r.dev);
  }
  assert.equal(state.seq, N);
  assert.equal(r.backend.heldFrames, 0);
  assert.equal(r.dev.rx.pending, 0);
  assert.equal(rd(r.dev, STATS.MPC), 0, "nothing dropped");
  assert.equal(rd(r.dev, STATS.GPRC), N);
  assert.ok(rd(r.dev, STATS.RNBC) > 1, "each exhaustion of the ring counts once");
  assert.ok(r.backend.stats.rxPauses >= 1);
  // Ring drained: the next frame flows at once (the pause ended with the last RDT write).
  harvest(r, count, state);
  await settle(r.dev);
  assert.ok(!r.backend.receivePaused);
  r.wire.send(numbered(N));
  await settle(r.dev);
  assert.equal(harvest(r, count, state), 1);
});

Deno.test("RX backpressure: with descriptors but a slow DMA, the packet buffer limits reading, no drops", async () => {
  const count = 256;
  const r = rig({ size: 2 << 20 });
  linkUp(r.dev);
  setupRx(r, count);
  // Bus mastering off: frames cannot leave the packet buffer (16 KiB here).
  wr(r.dev, R.PBA, 16);
  r.ctx.master = false;
  for (let i = 0; i < 40; i++) r.wire.send(numbered(i));
  await settle(r.dev);
  assert.ok(r.backend.receivePaused);
  assert.ok(r.dev.rx.pending <= 16, `${r.dev.rx.pending} frames in 16 KiB`);
  assert.equal(r.dev.rx.pending + r.backend.heldFrames, 40);
  assert.ok(!r.dev.rx.starved, "not a lack of descriptors");
  assert.equal(rd(r.dev, STATS.RNBC), 0);
  r.ctx.master = true;
  wr(r.dev, R.RDT, count - 1); // the driver's next RDT write restarts DMA
  await settle(r.dev);
  assert.equal(rd(r.dev, R.RDH), 40);
  assert.equal(rd(r.dev, STATS.MPC), 0);
  assert.ok(!r.backend.receivePaused);
});

Deno.test("RX backpressure: a reset while paused drops what waited and resumes cleanly", async () => {
  for (const how of ["DEVICE_RESET", "CTRL.RST", "RCTL.EN cleared"]) {
    const count = 8;
    const r = receiving(count);
    for (let i = 0; i < 100; i++) r.wire.send(numbered(i));
    await settle(r.dev);
    assert.ok(r.backend.receivePaused, how);
    if (how === "DEVICE_RESET") await r.dev.reset();
    else if (how === "CTRL.RST") wr(r.dev, R.CTRL, CTRL.RST);
    else wr(r.dev, R.RCTL, 0);
    await settle(r.dev);
    assert.ok(!r.backend.receivePaused, `${how}: reading resumed`);
    assert.equal(r.backend.heldFrames, 0, `${how}: the disabled receiver dropped the backlog`);
    assert.equal(r.dev.rx.pending, 0);
    assert.equal(rd(r.dev, STATS.MPC), 0, `${how}: not counted as missed`);
    // The driver brings the receiver up again: new frames arrive normally.
    if (how !== "RCTL.EN cleared") linkUp(r.dev);
    setupRx(r, count);
    for (let i = 0; i < 3; i++) r.wire.send(numbered(i));
    await settle(r.dev);
    const state = { next: 0, seq: 0 };
    assert.equal(harvest(r, count, state), 3, how);
    assert.ok(!r.backend.receivePaused);
    r.dev.close();
  }
});

Deno.test("RX backpressure: link loss while paused lets the backend drain (frames are dropped)", async () => {
  const r = receiving();
  for (let i = 0; i < 100; i++) r.wire.send(numbered(i));
  await settle(r.dev);
  assert.ok(r.backend.receivePaused);
  wr(r.dev, R.CTRL, rd(r.dev, R.CTRL) & ~CTRL.SLU);
  await settle(r.dev);
  assert.ok(!r.dev.linkUp);
  assert.ok(!r.backend.receivePaused);
  assert.equal(r.backend.heldFrames, 0);
});

Deno.test("RX backpressure: a frame that can never fit the ring is dropped (MPC), reception goes on", async () => {
  // 8 descriptors of 256 bytes: at most 7 x 256 = 1792 bytes per frame.
  const count = 8;
  const r = receiving(count, RCTL.BAM | RCTL.LPE | (3 << RCTL.BSIZE_SHIFT), 256);
  wr(r.dev, R.IMS, ICR.RXO);
  r.wire.send(numbered(0, 4000));
  r.wire.send(numbered(1, 200));
  await settle(r.dev);
  assert.equal(rd(r.dev, STATS.MPC), 1);
  assert.ok(rd(r.dev, R.ICR) & ICR.RXO);
  assert.equal(rd(r.dev, R.RDH), 1, "the small frame took one descriptor");
  assert.ok(!r.backend.receivePaused);
  // Null buffers fill the whole ring: nothing the guest gives later can help either.
  const s = receiving(count);
  for (let i = 0; i < count; i++) descView(s, ADDR.RX_RING, i).setBigUint64(0, 0n, true);
  s.wire.send(numbered(0));
  s.wire.send(numbered(1));
  await settle(s.dev);
  assert.equal(rd(s.dev, STATS.MPC), 2);
  assert.ok(!s.backend.receivePaused);
});

Deno.test("RX backpressure: a stopped ring (bogus RDT) does not hold the backend; frames count as missed", async () => {
  const r = receiving();
  for (let i = 0; i < 100; i++) r.wire.send(numbered(i));
  await settle(r.dev);
  assert.ok(r.backend.receivePaused);
  wr(r.dev, R.RDT, 5000); // beyond the ring: the engine stops it (reported) ...
  await settle(r.dev);
  assert.match(r.dev.rx.stopped ?? "", /tail 5000/);
  assert.ok(!r.backend.receivePaused, "... and lets the backend go on");
  assert.equal(r.backend.heldFrames, 0);
  assert.ok(rd(r.dev, STATS.MPC) > 0);
  // Reprogramming the ring brings reception back.
  setupRx(r, 8);
  r.wire.send(numbered(0));
  await settle(r.dev);
  assert.equal(r.dev.rx.stopped, undefined);
  assert.equal(harvest(r, 8, { next: 0, seq: 0 }), 1);
});

Deno.test("RX backpressure: MAC loopback cannot be paused: a full buffer drops with MPC", async () => {
  const r = receiving(8, RCTL.BAM | (1 << 6));
  wr(r.dev, R.RDT, 0); // no descriptors
  for (let i = 0; i < 80; i++) r.dev.rx.receive(numbered(i));
  await settle(r.dev);
  assert.ok(rd(r.dev, STATS.MPC) > 0);
  assert.ok(r.dev.rx.pending < 80);
});
