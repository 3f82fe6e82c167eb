import assert from "node:assert/strict";
import { CTRL, ICR, R, RCTL, RXCSUM, RXD_ERR, RXD_STA, TXD_CMD } from "../../spec/e1000.ts";
import { crc32 } from "./checksum.ts";
import { STATS } from "./regs.ts";
import { bufferSize } from "./rx.ts";
import { mtaHash } from "./rx_filter.ts";
import {
  ADDR,
  BCAST,
  descView,
  frame,
  legacy,
  putTx,
  rd,
  ready,
  rig,
  RIG_MAC,
  settle,
  wr,
} from "./testing.ts";
import { ipv4Packet } from "./testing_packets.ts";

const OTHER = Uint8Array.of(0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc);
const MCAST = Uint8Array.of(0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb);

/** A NIC receiving into `count` buffers of `bufSize` with RCTL `rctl`. */
function receiving(rctl: number = RCTL.BAM, count = 16, bufSize = 2048) {
  return ready({ rx: { rctl, count, bufSize } });
}

/** Length, status, errors and special of RX descriptor i. */
function rxDesc(r: ReturnType<typeof rig>, i: number) {
  const d = descView(r, ADDR.RX_RING, i);
  return {
    len: d.getUint16(8, true),
    csum: d.getUint16(10, true),
    status: d.getUint8(12),
    errors: d.getUint8(13),
    special: d.getUint16(14, true),
  };
}

function withFcs(f: Uint8Array): Uint8Array {
  const out = new Uint8Array(f.length + 4);
  out.set(f);
  new DataView(out.buffer).setUint32(f.length, crc32(f), true);
  return out;
}

Deno.test("RX: a unicast frame lands in one buffer with FCS, DD|EOP, RXT0, counters", async () => {
  const r = receiving();
  wr(r.dev, R.IMS, ICR.RXT0);
  const f = frame(RIG_MAC, 200);
  r.wire.send(f);
  await settle(r.dev);
  const d = rxDesc(r, 0);
  assert.equal(d.len, f.length + 4);
  assert.equal(d.status & (RXD_STA.DD | RXD_STA.EOP), RXD_STA.DD | RXD_STA.EOP);
  assert.deepEqual(r.mem.ram.subarray(ADDR.RX_BUF, ADDR.RX_BUF + d.len), withFcs(f));
  assert.equal(rd(r.dev, R.RDH), 1);
  assert.ok(rd(r.dev, R.ICR) & ICR.RXT0);
  assert.deepEqual(r.ctx.triggers, [0]);
  assert.equal(rd(r.dev, STATS.GPRC), 1);
  assert.equal(rd(r.dev, STATS.TPR), 1);
  assert.equal(rd(r.dev, STATS.GORC), f.length + 4);
});

Deno.test("RX: short frames are padded to 60 bytes before the FCS", async () => {
  const r = receiving();
  r.wire.send(frame(RIG_MAC, 10));
  await settle(r.dev);
  assert.equal(rxDesc(r, 0).len, 64);
});

Deno.test("RX: buffer sizes from BSIZE/BSEX; large frames split with EOP on the last", async () => {
  assert.deepEqual(
    [0, 1, 2, 3].map((b) => bufferSize(b << RCTL.BSIZE_SHIFT)),
    [2048, 1024, 512, 256],
  );
  assert.deepEqual(
    [1, 2, 3].map((b) => bufferSize((b << RCTL.BSIZE_SHIFT) | RCTL.BSEX)),
    [16384, 8192, 4096],
  );
  const r = receiving(RCTL.BAM | (3 << RCTL.BSIZE_SHIFT) | RCTL.LPE, 16, 256);
  const f = frame(RIG_MAC, 700);
  r.wire.send(f);
  await settle(r.dev);
  const total = f.length + 4;
  const parts = Math.ceil(total / 256);
  const got = new Uint8Array(total);
  for (let i = 0; i < parts; i++) {
    const d = rxDesc(r, i);
    assert.equal(d.len, Math.min(256, total - i * 256));
    assert.equal(d.status & RXD_STA.EOP, i === parts - 1 ? RXD_STA.EOP : 0);
    assert.ok(d.status & RXD_STA.DD);
    got.set(r.mem.ram.subarray(ADDR.RX_BUF + i * 256, ADDR.RX_BUF + i * 256 + d.len), i * 256);
  }
  assert.deepEqual(got, withFcs(f));
  assert.equal(rd(r.dev, R.RDH), parts);
});

Deno.test("RX: long frames need LPE (ROC counts the rest); SECRC strips the FCS", async () => {
  const r = receiving();
  r.wire.send(frame(RIG_MAC, 1600));
  r.wire.send(frame(RIG_MAC, 1500));
  await settle(r.dev);
  assert.equal(rd(r.dev, STATS.ROC), 1);
  assert.equal(rxDesc(r, 0).len, 1518);
  wr(r.dev, R.RCTL, rd(r.dev, R.RCTL) | RCTL.LPE | RCTL.SECRC);
  r.wire.send(frame(RIG_MAC, 1600));
  await settle(r.dev);
  assert.equal(rxDesc(r, 1).len, 1614);
  assert.equal(rxDesc(r, 2).status & RXD_STA.EOP, 0, "1614 bytes fit one 2048 buffer");
});

Deno.test("RX filters: unicast exact match, broadcast (BAM), multicast hash (MTA), promiscuous", async () => {
  const r = receiving(0);
  const send = async (dst: Uint8Array) => {
    const before = rd(r.dev, R.RDH);
    r.wire.send(frame(dst, 50));
    await settle(r.dev);
    return rd(r.dev, R.RDH) !== before;
  };
  assert.ok(await send(RIG_MAC));
  assert.ok(!(await send(OTHER)));
  assert.ok(!(await send(BCAST)), "no BAM");
  wr(r.dev, R.RCTL, rd(r.dev, R.RCTL) | RCTL.BAM);
  assert.ok(await send(BCAST));
  assert.ok(!(await send(MCAST)));
  for (const mo of [0, 1, 2, 3]) {
    const h = mtaHash(MCAST, mo);
    for (let i = 0; i < 128; i++) wr(r.dev, R.MTA + 4 * i, 0);
    wr(r.dev, R.MTA + 4 * (h >>> 5), 1 << (h & 31));
    wr(r.dev, R.RCTL, (rd(r.dev, R.RCTL) & ~(3 << RCTL.MO_SHIFT)) | (mo << RCTL.MO_SHIFT));
    assert.ok(await send(MCAST), `MO ${mo}`);
    const last = (rd(r.dev, R.RDH) + 15) % 16;
    assert.ok(rxDesc(r, last).status & RXD_STA.PIF, "passed the inexact filter");
  }
  // 01:aa:00:12:34:56: bits [47:36], [46:35], [45:34], [43:32].
  const ex = Uint8Array.of(0x01, 0xaa, 0x00, 0x12, 0x34, 0x56);
  assert.deepEqual([0, 1, 2, 3].map((mo) => mtaHash(ex, mo)), [0x563, 0xac6, 0x58d, 0x634]);
  for (let i = 0; i < 128; i++) wr(r.dev, R.MTA + 4 * i, 0);
  assert.ok(!(await send(MCAST)));
  wr(r.dev, R.RCTL, rd(r.dev, R.RCTL) | RCTL.MPE);
  assert.ok(await send(MCAST), "multicast promiscuous");
  assert.ok(!(await send(OTHER)));
  wr(r.dev, R.RCTL, rd(r.dev, R.RCTL) | RCTL.UPE);
  assert.ok(await send(OTHER), "unicast promiscuous");
  wr(r.dev, R.RA + 8, 0xaa005452);
  wr(r.dev, R.RA + 12, 0x8000ccbb);
  wr(r.dev, R.RCTL, rd(r.dev, R.RCTL) & ~RCTL.UPE);
  assert.ok(await send(OTHER), "second RA entry");
});

Deno.test("RX: a full ring holds frames (RNBC), RDT delivers them; overflow drops with MPC+RXO", async () => {
  const r = receiving(RCTL.BAM, 8);
  r.backend.pausable = false; // a source that cannot be held back (see backpressure_test.ts)
  wr(r.dev, R.IMS, ICR.RXO | ICR.RXDMT0);
  for (let i = 0; i < 10; i++) r.wire.send(frame(RIG_MAC, 1000));
  await settle(r.dev);
  assert.equal(rd(r.dev, R.RDH), 7, "7 descriptors between RDH and RDT");
  assert.equal(r.dev.rx.pending, 3);
  assert.equal(rd(r.dev, STATS.RNBC), 1);
  assert.ok(rd(r.dev, R.ICR) & ICR.RXDMT0);
  wr(r.dev, R.RDT, 2);
  await settle(r.dev);
  assert.equal(rd(r.dev, R.RDH), 2);
  assert.equal(r.dev.rx.pending, 0);
  // The packet buffer (PBA: 48 KiB) overflows when the guest stops taking frames.
  for (let i = 0; i < 60; i++) r.wire.send(frame(RIG_MAC, 1400));
  await settle(r.dev);
  assert.ok(rd(r.dev, STATS.MPC) > 0);
  assert.ok(rd(r.dev, R.ICR) & ICR.RXO);
  assert.ok(r.dev.rx.pending < 60);
});

Deno.test("RX: disabling the receiver drops waiting frames; no reception without link", async () => {
  const r = receiving(RCTL.BAM, 8);
  wr(r.dev, R.RDT, 0);
  r.wire.send(frame(RIG_MAC, 100));
  await settle(r.dev);
  assert.equal(r.dev.rx.pending, 1);
  wr(r.dev, R.RCTL, 0);
  assert.equal(r.dev.rx.pending, 0);
  wr(r.dev, R.RCTL, RCTL.EN | RCTL.BAM);
  wr(r.dev, R.RDT, 7);
  r.backend.setLink(false);
  r.wire.send(frame(RIG_MAC, 100));
  await settle(r.dev);
  assert.equal(rd(r.dev, R.RDH), 0);
});

Deno.test("RX checksum offload: IPCS/TCPCS on good packets, IPE/TCPE on bad ones", async () => {
  const r = receiving();
  wr(r.dev, R.RXCSUM, RXCSUM.IPOFLD | RXCSUM.TUOFLD);
  const good = ipv4Packet({ ipChecksum: true, l4: "full", payload: 300 });
  const badTcp = ipv4Packet({ ipChecksum: true, l4: "full", payload: 300 });
  badTcp.frame[badTcp.frame.length - 1] ^= 0xff;
  const badIp = ipv4Packet({ ipChecksum: true, l4: "full", proto: "udp" });
  badIp.frame[badIp.l3 + 8] ^= 1; // TTL
  for (const p of [good, badTcp, badIp]) r.wire.send(p.frame);
  r.wire.send(frame(RIG_MAC, 64));
  await settle(r.dev);
  const [g, bt, bi, raw] = [0, 1, 2, 3].map((i) => rxDesc(r, i));
  assert.equal(
    g.status & (RXD_STA.IPCS | RXD_STA.TCPCS | RXD_STA.IXSM),
    RXD_STA.IPCS | RXD_STA.TCPCS,
  );
  assert.equal(g.errors, 0);
  assert.equal(bt.errors, RXD_ERR.TCPE);
  assert.equal(bi.errors & RXD_ERR.IPE, RXD_ERR.IPE);
  assert.equal(bi.errors & RXD_ERR.TCPE, 0, "UDP checksum still fine");
  assert.ok(raw.status & RXD_STA.IXSM, "not IP: ignore checksum indication");
  wr(r.dev, R.RXCSUM, 0);
  r.wire.send(good.frame);
  await settle(r.dev);
  assert.ok(rxDesc(r, 4).status & RXD_STA.IXSM);
});

Deno.test("RX: VLAN tags are stripped into the descriptor with CTRL.VME; VFTA filters", async () => {
  const r = receiving();
  wr(r.dev, R.CTRL, rd(r.dev, R.CTRL) | CTRL.VME);
  const p = ipv4Packet({ vlan: 0x0123, l4: "full", ipChecksum: true });
  r.wire.send(p.frame);
  await settle(r.dev);
  const d = rxDesc(r, 0);
  assert.ok(d.status & RXD_STA.VP);
  assert.equal(d.special, 0x0123);
  assert.equal(d.len, p.frame.length - 4 + 4);
  assert.deepEqual(r.mem.ram.subarray(ADDR.RX_BUF + 12, ADDR.RX_BUF + 14), Uint8Array.of(8, 0));
  wr(r.dev, R.RCTL, rd(r.dev, R.RCTL) | RCTL.VFE);
  r.wire.send(p.frame);
  await settle(r.dev);
  assert.equal(rd(r.dev, R.RDH), 1, "VID 0x123 not in VFTA");
  wr(r.dev, R.VFTA + 4 * (0x123 >> 5), 1 << (0x123 & 31));
  r.wire.send(p.frame);
  await settle(r.dev);
  assert.equal(rd(r.dev, R.RDH), 2);
});

Deno.test("RX: descriptors with a null buffer address are skipped", async () => {
  const r = receiving();
  descView(r, ADDR.RX_RING, 0).setBigUint64(0, 0n, true);
  const f = frame(RIG_MAC, 100);
  r.wire.send(f);
  await settle(r.dev);
  assert.equal(rxDesc(r, 0).status, RXD_STA.DD);
  assert.equal(rxDesc(r, 0).len, 0);
  const d = rxDesc(r, 1);
  assert.equal(d.status & RXD_STA.EOP, RXD_STA.EOP);
  assert.deepEqual(r.mem.ram.subarray(ADDR.RX_BUF + 2048, ADDR.RX_BUF + 2048 + d.len), withFcs(f));
  assert.equal(rd(r.dev, R.RDH), 2);
});

Deno.test("RX: MAC loopback (RCTL.LBM) returns transmitted frames", async () => {
  const r = ready({ rx: { rctl: RCTL.BAM | (1 << 6) }, tx: {} });
  const f = frame(RIG_MAC, 100);
  r.mem.ram.set(f, ADDR.TX_BUF);
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(f.length, TXD_CMD.EOP | TXD_CMD.RS) });
  wr(r.dev, R.TDT, 1);
  await settle(r.dev);
  assert.equal(r.wire.received.length, 0, "nothing on the wire");
  assert.equal(rd(r.dev, R.RDH), 1);
  assert.deepEqual(r.mem.ram.subarray(ADDR.RX_BUF, ADDR.RX_BUF + f.length), f);
});

Deno.test("RX: RXT0 latches only once the descriptor write-back is visible to the guest", async () => {
  const r = receiving();
  wr(r.dev, R.IMS, ICR.RXT0);
  // Message-based memory with the device's writes still on their way to the guest.
  let visible!: () => void;
  r.ctx.pendingWrites = new Promise<void>((res) => (visible = res));
  r.wire.send(frame(RIG_MAC, 200));
  await settle(r.dev);
  // A handler reading ICR now (for an earlier interrupt) must not take RXT0: the descriptor's
  // DD may not be in its memory yet, and a consumed cause is never announced again.
  assert.equal(rd(r.dev, R.ICR) & ICR.RXT0, 0);
  assert.deepEqual(r.ctx.triggers, []);
  r.ctx.pendingWrites = undefined;
  visible();
  await settle(r.dev);
  assert.ok(rd(r.dev, R.ICR) & ICR.RXT0);
  assert.deepEqual(r.ctx.triggers, [0]);
});
