import assert from "node:assert/strict";
import { CTRL, ICR, POPTS, R, TUCMD, TXD_CMD } from "../../spec/e1000.ts";
import { STATS } from "./regs.ts";
import { quiesce } from "../device.ts";
import { bounded } from "../../tests/watchdog.ts";
import {
  ADDR,
  BCAST,
  contextDesc,
  dataDesc,
  descView,
  frame,
  legacy,
  putTx,
  queueFrames,
  rd,
  ready,
  readyToSend,
  type Rig,
  settle,
  tsoContext,
  wr,
} from "./testing.ts";
import { ipHeaderOk, ipv4Packet, l4ChecksumOk } from "./testing_packets.ts";

const { EOP, RS, IFCS, TSE, VLE } = TXD_CMD;

/** A NIC with `count` frames queued for a congested backend, after `ms` to try sending them. */
async function congested(count: number, ms: number): Promise<Rig> {
  const r = ready({ tx: {} });
  r.backend.setCongested(true);
  queueFrames(r, frame(BCAST, 60), count);
  await new Promise((res) => setTimeout(res, ms));
  return r;
}

/** The backend takes frames again: all `count` held go out and the head passes them. */
async function drained(r: Rig, count: number): Promise<void> {
  r.backend.setCongested(false);
  await settle(r.dev);
  assert.equal(r.wire.received.length, count);
  assert.equal(rd(r.dev, R.TDH), count);
}

Deno.test("TX legacy: one descriptor, RS → DD written back, TXDW and TXQE, counters", async () => {
  const { f, ...r } = readyToSend(100);
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(f.length, EOP | IFCS | RS) });
  wr(r.dev, R.IMS, ICR.TXDW);
  wr(r.dev, R.TDT, 1);
  await settle(r.dev);
  assert.equal(r.wire.received.length, 1);
  assert.deepEqual(r.wire.received[0], f);
  assert.equal(descView(r, ADDR.TX_RING, 0).getUint8(12) & 1, 1, "DD");
  assert.equal(rd(r.dev, R.TDH), 1);
  assert.equal(rd(r.dev, R.ICR), ICR.TXDW | ICR.TXQE);
  assert.deepEqual(r.ctx.triggers, [0]);
  assert.equal(rd(r.dev, STATS.GPTC), 1);
  assert.equal(rd(r.dev, STATS.BPTC), 1);
  assert.equal(rd(r.dev, STATS.GOTC), f.length + 4);
});

Deno.test("TX legacy: a frame over three descriptors; only RS descriptors get DD", async () => {
  const { f, ...r } = readyToSend(3000);
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(1000, IFCS) });
  putTx(r, 1, { addr: ADDR.TX_BUF + 1000, lower: legacy(1000, IFCS) });
  putTx(r, 2, { addr: ADDR.TX_BUF + 2000, lower: legacy(f.length - 2000, EOP | IFCS | RS) });
  wr(r.dev, R.TDT, 2);
  await settle(r.dev);
  assert.equal(r.wire.received.length, 0, "EOP not reached yet");
  wr(r.dev, R.TDT, 3);
  await settle(r.dev);
  assert.equal(r.wire.received.length, 1);
  assert.deepEqual(r.wire.received[0], f);
  assert.equal(descView(r, ADDR.TX_RING, 0).getUint8(12), 0);
  assert.equal(descView(r, ADDR.TX_RING, 2).getUint8(12), 1);
});

Deno.test("TX: short frames are padded to 60 bytes with PSP; IC inserts a legacy checksum", async () => {
  const r = ready({ tx: {} });
  const p = ipv4Packet({ proto: "udp", payload: 4, l4: "offload" });
  r.mem.ram.set(p.frame, ADDR.TX_BUF);
  const lower = legacy(p.frame.length, EOP | RS | TXD_CMD.IC) | (p.csumAt << 16);
  putTx(r, 0, { addr: ADDR.TX_BUF, lower, upper: p.l4 << 8 });
  wr(r.dev, R.TDT, 1);
  await settle(r.dev);
  const out = r.wire.received[0];
  assert.equal(out.length, 60);
  assert.ok(l4ChecksumOk(out, p.l3));
});

Deno.test("TX context + data: TCP and UDP checksum offload as Linux sets it up", async () => {
  for (const proto of ["tcp", "udp"] as const) {
    const r = ready({ tx: {} });
    const p = ipv4Packet({ proto, payload: 1200, ipChecksum: true });
    r.mem.ram.set(p.frame, ADDR.TX_BUF);
    const tucmd = proto === "tcp" ? TUCMD.TCP : 0;
    putTx(r, 0, contextDesc({ tucss: p.l4, tucso: p.csumAt, tucmd }));
    putTx(r, 1, { addr: ADDR.TX_BUF, lower: dataDesc(600, IFCS), upper: POPTS.TXSM << 8 });
    putTx(r, 2, {
      addr: ADDR.TX_BUF + 600,
      lower: dataDesc(p.frame.length - 600, EOP | IFCS | RS),
      upper: POPTS.TXSM << 8,
    });
    wr(r.dev, R.TDT, 3);
    await settle(r.dev);
    const out = r.wire.received[0];
    assert.equal(out.length, p.frame.length, proto);
    assert.ok(l4ChecksumOk(out, p.l3), `${proto} checksum`);
    assert.ok(ipHeaderOk(out, p.l3));
    assert.deepEqual(out.subarray(p.l4 + 20), p.frame.subarray(p.l4 + 20));
  }
});

Deno.test("TX context + data: IXSM computes the IPv4 header checksum", async () => {
  const r = ready({ tx: {} });
  const p = ipv4Packet({ proto: "udp", payload: 50, l4: "full" });
  r.mem.ram.set(p.frame, ADDR.TX_BUF);
  putTx(r, 0, contextDesc({ ipcss: p.l3, ipcso: p.ipCsumAt, ipcse: p.l4 - 1, tucmd: TUCMD.IP }));
  putTx(r, 1, {
    addr: ADDR.TX_BUF,
    lower: dataDesc(p.frame.length, EOP | RS),
    upper: POPTS.IXSM << 8,
  });
  wr(r.dev, R.TDT, 2);
  await settle(r.dev);
  assert.ok(ipHeaderOk(r.wire.received[0], p.l3));
  assert.ok(l4ChecksumOk(r.wire.received[0], p.l3));
});

Deno.test("TX TSO: segments with fixed lengths, IDs, sequence numbers, flags and checksums", async () => {
  const r = ready({ tx: {} });
  const mss = 1000;
  const p = ipv4Packet({ payload: 2500, l4: "partial", tcpFlags: 0x19 }); // FIN|PSH|ACK
  const hdr = p.l4 + 20;
  r.mem.ram.set(p.frame, ADDR.TX_BUF);
  putTx(r, 0, tsoContext(p, 2500, mss));
  const popts = (POPTS.TXSM | POPTS.IXSM) << 8;
  putTx(r, 1, { addr: ADDR.TX_BUF, lower: dataDesc(hdr, IFCS | TSE), upper: popts });
  putTx(r, 2, {
    addr: ADDR.TX_BUF + hdr,
    lower: dataDesc(2500, EOP | IFCS | TSE | RS),
    upper: popts,
  });
  wr(r.dev, R.TDT, 3);
  await settle(r.dev);
  const segs = r.wire.received;
  assert.equal(segs.length, 3);
  const seq0 = 0x01020304;
  segs.forEach((s, i) => {
    const len = Math.min(mss, 2500 - i * mss);
    assert.equal(s.length, hdr + len);
    assert.equal((s[p.l3 + 2] << 8) | s[p.l3 + 3], s.length - p.l3, "IP total length");
    assert.equal((s[p.l3 + 4] << 8) | s[p.l3 + 5], 0x1234 + i, "IP id");
    const seq = new DataView(s.buffer).getUint32(p.l4 + 4);
    assert.equal(seq, seq0 + i * mss);
    assert.equal(s[p.l4 + 13], i === 2 ? 0x19 : 0x10, "PSH/FIN only on the last");
    assert.ok(ipHeaderOk(s, p.l3), `segment ${i} IP checksum`);
    assert.ok(l4ChecksumOk(s, p.l3), `segment ${i} TCP checksum`);
    assert.deepEqual(s.subarray(hdr), p.frame.subarray(hdr + i * mss, hdr + i * mss + len));
  });
  assert.equal(rd(r.dev, STATS.TSCTC), 1);
  assert.equal(rd(r.dev, STATS.GPTC), 3);
});

Deno.test("TX: VLE inserts an 802.1Q tag when CTRL.VME is set", async () => {
  const { f, ...r } = readyToSend(80);
  wr(r.dev, R.CTRL, rd(r.dev, R.CTRL) | CTRL.VME);
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(f.length, EOP | RS | VLE), upper: 0x0123 << 16 });
  wr(r.dev, R.TDT, 1);
  await settle(r.dev);
  const out = r.wire.received[0];
  assert.equal(out.length, f.length + 4);
  assert.deepEqual([...out.subarray(12, 16)], [0x81, 0x00, 0x01, 0x23]);
  assert.deepEqual(out.subarray(16), f.subarray(12));
});

Deno.test("TX: kicks during processing are not lost; the ring wraps", async () => {
  const { f, ...r } = readyToSend();
  let sent = 0;
  for (let round = 0; round < 5; round++) {
    for (let k = 0; k < 7; k++) {
      const i = (sent + k) % 16;
      putTx(r, i, { addr: ADDR.TX_BUF, lower: legacy(f.length, EOP | RS) });
      wr(r.dev, R.TDT, (i + 1) % 16);
      if (k === 3) await Promise.resolve();
    }
    sent += 7;
    await settle(r.dev);
  }
  assert.equal(r.wire.received.length, 35);
  assert.equal(rd(r.dev, R.TDH), 35 % 16);
});

Deno.test("TX: a congested backend holds transmission until it drains", async () => {
  const r = await congested(1, 5);
  assert.equal(r.wire.received.length, 0);
  assert.equal(rd(r.dev, R.TDH), 0);
  await drained(r, 1);
});

Deno.test("TX: quiesce resolves while the backend stays congested (a stream peer that stopped reading)", async () => {
  const r = await congested(3, 5);
  // The client left: the server quiesces the device before taking the next one. Nothing is
  // touching guest memory while frames wait for the backend, so this must not wait for it.
  await bounded("quiesce with a congested backend", () => quiesce(r.dev), 2_000);
  assert.equal(r.wire.received.length, 0);
  // The peer reads again: the waiting frames go out in order, none lost.
  await drained(r, 3);
});

Deno.test("TX: device reset while waiting on a congested backend does not hang", async () => {
  const r = await congested(1, 2);
  await r.dev.reset();
  assert.equal(r.wire.received.length, 0);
  assert.equal(rd(r.dev, R.TDH), 0);
});

Deno.test("TX: nothing is sent with TCTL.EN clear, without bus mastering or without link", async () => {
  const { f, ...r } = readyToSend();
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(f.length, EOP | RS) });
  r.ctx.master = false;
  wr(r.dev, R.TDT, 1);
  await settle(r.dev);
  assert.equal(rd(r.dev, R.TDH), 0, "no DMA without bus mastering");
  r.ctx.master = true;
  wr(r.dev, R.TCTL, 0);
  wr(r.dev, R.TDT, 1);
  await settle(r.dev);
  assert.equal(rd(r.dev, R.TDH), 0);
  r.backend.setLink(false);
  wr(r.dev, R.TCTL, 2);
  await settle(r.dev);
  assert.equal(rd(r.dev, R.TDH), 1, "consumed");
  assert.equal(r.wire.received.length, 0, "no carrier: dropped");
});

Deno.test("TX: TDT at exactly the ring size stops the ring (one less is a valid tail)", async () => {
  // count - 1 is the last valid tail: the ring transmits up to it.
  const { f, ...r } = readyToSend();
  for (let i = 0; i < 15; i++) putTx(r, i, { addr: ADDR.TX_BUF, lower: legacy(f.length, EOP) });
  wr(r.dev, R.TDT, 15);
  await settle(r.dev);
  assert.equal(r.dev.tx.stopped, undefined);
  assert.equal(rd(r.dev, R.TDH), 15);
  assert.equal(r.wire.received.length, 15);
  // TDT = 16 on a 16-descriptor ring: the head could never meet it (the device would spin).
  const s = ready({ tx: {} });
  wr(s.dev, R.TDT, 16);
  await settle(s.dev);
  assert.match(s.dev.tx.stopped ?? "", /tail 16 beyond ring of 16/);
  assert.equal(rd(s.dev, R.TDH), 0);
});
