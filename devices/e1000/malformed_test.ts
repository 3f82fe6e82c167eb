import assert from "node:assert/strict";
import { ICR, POPTS, R, RCTL, RXD_ERR, TUCMD, TXD_CMD } from "../../spec/e1000.ts";
import { STATS } from "./regs.ts";
import {
  ADDR,
  contextDesc,
  dataDesc,
  descView,
  frame,
  legacy,
  putTx,
  rd,
  ready,
  readyToSend,
  RIG_MAC,
  settle,
  tsoContext,
  wr,
} from "./testing.ts";
import { ipv4Packet } from "./testing_packets.ts";

const { EOP, RS } = TXD_CMD;

Deno.test("malformed TX ring: zero or unaligned length, head/tail out of range", async () => {
  const r = readyToSend();
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(r.f.length, EOP | RS) });
  wr(r.dev, R.TDLEN, 100); // not a multiple of 128: reads as 0
  assert.equal(rd(r.dev, R.TDLEN), 0);
  wr(r.dev, R.TDT, 1);
  await settle(r.dev);
  assert.match(r.dev.tx.stopped ?? "", /length is 0/);
  assert.equal(r.wire.received.length, 0);
  wr(r.dev, R.TDLEN, 256);
  assert.equal(r.dev.tx.stopped, undefined, "reprogramming clears the stop");
  wr(r.dev, R.TDT, 40);
  await settle(r.dev);
  assert.match(r.dev.tx.stopped ?? "", /tail 40 beyond/);
  wr(r.dev, R.TDH, 0);
  wr(r.dev, R.TDT, 1);
  await settle(r.dev);
  assert.equal(r.wire.received.length, 1);
  wr(r.dev, R.TDH, 0x9999);
  wr(r.dev, R.TDT, 2);
  await settle(r.dev);
  assert.match(r.dev.tx.stopped ?? "", /head .* beyond/);
});

Deno.test("malformed TX ring: descriptors in unmapped memory stop the ring, never hang", async () => {
  const r = readyToSend();
  r.mem.addHole(ADDR.TX_RING, 0x100);
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(r.f.length, EOP | RS) });
  wr(r.dev, R.TDT, 1);
  await settle(r.dev);
  assert.match(r.dev.tx.stopped ?? "", /descriptor access/);
  assert.equal(rd(r.dev, R.TDH), 0);
  wr(r.dev, R.TDBAL, 0x8000); // a mapped ring
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(r.f.length, EOP | RS) });
  await settle(r.dev);
  assert.equal(r.dev.tx.stopped, undefined);
});

Deno.test("malformed TX: unmapped buffers, huge lengths and bogus TSO contexts drop the frame", async () => {
  const r = readyToSend();
  r.mem.addHole(0x90000, 0x1000);
  putTx(r, 0, { addr: 0x90000, lower: legacy(100, EOP | RS) });
  putTx(r, 1, { addr: ADDR.TX_BUF, lower: dataDesc(0xfffff, EOP | RS) });
  putTx(r, 2, contextDesc({ tucmd: TUCMD.TSE | TUCMD.TCP, hdrlen: 200, mss: 0, tucso: 250 }));
  putTx(r, 3, {
    addr: ADDR.TX_BUF,
    lower: dataDesc(r.f.length, EOP | RS | TXD_CMD.TSE),
    upper: POPTS.TXSM << 8,
  });
  putTx(r, 4, { addr: ADDR.TX_BUF, lower: legacy(r.f.length, EOP | RS) });
  putTx(r, 5, { addr: 0xfffffffffff0n, lower: legacy(64, EOP | RS) });
  putTx(r, 6, { addr: ADDR.TX_BUF, lower: legacy(r.f.length, EOP | RS) });
  wr(r.dev, R.TDT, 7);
  await settle(r.dev);
  assert.equal(r.wire.received.length, 2, "only the two good frames");
  assert.equal(rd(r.dev, R.TDH), 7);
  for (const i of [0, 1, 3, 4, 5, 6]) {
    assert.equal(descView(r, ADDR.TX_RING, i).getUint8(12) & 1, 1, `DD on ${i}`);
  }
  assert.equal(descView(r, ADDR.TX_RING, 2).getUint8(12), 0, "context without RS");
  assert.equal(rd(r.dev, STATS.TSCTFC), 1);
  assert.equal(r.dev.tx.stopped, undefined);
});

Deno.test("malformed TX: checksum offsets outside the frame leave it unchanged", async () => {
  const r = readyToSend();
  const p = ipv4Packet({ payload: 10 });
  r.mem.ram.set(p.frame, ADDR.TX_BUF);
  putTx(r, 0, contextDesc({ tucss: 250, tucso: 255, ipcss: 200, ipcso: 254, tucse: 3 }));
  putTx(r, 1, {
    addr: ADDR.TX_BUF,
    lower: dataDesc(p.frame.length, EOP | RS),
    upper: (POPTS.TXSM | POPTS.IXSM) << 8,
  });
  wr(r.dev, R.TDT, 2);
  await settle(r.dev);
  assert.deepEqual(r.wire.received[0], p.frame);
});

Deno.test("malformed TX: descriptors without EOP are bounded by the frame size limit", async () => {
  const r = readyToSend();
  for (let i = 0; i < 16; i++) putTx(r, i, { addr: ADDR.TX_BUF, lower: legacy(4096, RS) });
  for (let round = 0; round < 4; round++) {
    wr(r.dev, R.TDT, 15);
    await settle(r.dev);
    wr(r.dev, R.TDT, 0);
    await settle(r.dev);
  }
  putTx(r, 0, { addr: ADDR.TX_BUF, lower: legacy(64, EOP | RS) });
  putTx(r, 1, { addr: ADDR.TX_BUF, lower: legacy(r.f.length, EOP | RS) });
  wr(r.dev, R.TDT, 2);
  await settle(r.dev);
  assert.equal(r.wire.received.length, 1, "the overlong frame was dropped, the next one sent");
});

Deno.test("malformed RX ring: zero length, tail out of range, unmapped ring", async () => {
  const r = ready({ rx: { count: 8 } });
  wr(r.dev, R.RDLEN, 0);
  r.wire.send(frame(RIG_MAC, 100));
  await settle(r.dev);
  assert.match(r.dev.rx.stopped ?? "", /length is 0/);
  assert.ok(rd(r.dev, R.ICR) & ICR.RXO);
  wr(r.dev, R.RDLEN, 128);
  wr(r.dev, R.RDT, 500);
  r.wire.send(frame(RIG_MAC, 100));
  await settle(r.dev);
  assert.match(r.dev.rx.stopped ?? "", /tail 500/);
  r.mem.addHole(ADDR.RX_RING, 0x80);
  wr(r.dev, R.RDT, 7);
  wr(r.dev, R.RDLEN, 128);
  r.wire.send(frame(RIG_MAC, 100));
  await settle(r.dev);
  assert.match(r.dev.rx.stopped ?? "", /descriptor access/);
  assert.equal(r.dev.rx.pending, 0, "frames are dropped, not kept");
});

Deno.test("malformed RX: unmapped buffers complete with RXE; the ring goes on", async () => {
  const r = ready({ rx: { count: 8 } });
  descView(r, ADDR.RX_RING, 0).setBigUint64(0, 0xfff00000n, true);
  r.wire.send(frame(RIG_MAC, 100));
  r.wire.send(frame(RIG_MAC, 100));
  await settle(r.dev);
  assert.equal(descView(r, ADDR.RX_RING, 0).getUint8(13) & RXD_ERR.RXE, RXD_ERR.RXE);
  assert.equal(descView(r, ADDR.RX_RING, 1).getUint8(13), 0);
  assert.equal(rd(r.dev, R.RDH), 2);
  assert.equal(r.dev.rx.stopped, undefined);
});

Deno.test("malformed: random register and descriptor garbage never throws or hangs", async () => {
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (const mem of [{}, { bounce: true, chunkSize: 512 }, { segmentSize: 4096 }]) {
    const holes = [{ addr: 0x80000, len: 0x10000 }];
    const rctl = RCTL.BAM | RCTL.UPE | RCTL.LPE;
    const r = ready({ mem: { ...mem, holes }, tx: {}, rx: { count: 8, rctl } });
    const regs = [R.TDT, R.TDH, R.TDLEN, R.TDBAL, R.RDT, R.RDH, R.RDLEN, R.RDBAL, R.RCTL, R.TCTL];
    for (let i = 0; i < 300; i++) {
      const a = rand() % 0x100000;
      r.mem.ram[a] = rand() & 0xff;
      if (i % 3 === 0) {
        r.mem.ram.set(new Uint8Array(16).map(() => rand()), 0x1000 + (rand() % 64) * 16);
      }
      if (i % 5 === 0) wr(r.dev, regs[rand() % regs.length], rand() % 0x400);
      if (i % 7 === 0) r.wire.send(frame(RIG_MAC, rand() % 3000));
      if (i % 11 === 0) wr(r.dev, R.TCTL, 2);
      if (i % 13 === 0) wr(r.dev, R.RCTL, RCTL.EN | RCTL.UPE);
      if (i % 17 === 0) await settle(r.dev);
    }
    await settle(r.dev);
    await r.dev.reset();
    r.dev.close();
  }
});

Deno.test("message-based (bounce) and segmented guest memory behave the same", async () => {
  for (const mem of [{ bounce: true, chunkSize: 700 }, { segmentSize: 1024 }]) {
    const r = ready({ mem, tx: {}, rx: { count: 8 } });
    const p = ipv4Packet({ payload: 3000, l4: "partial" });
    r.mem.ram.set(p.frame, ADDR.TX_BUF);
    putTx(r, 0, tsoContext(p, 3000, 1448));
    putTx(r, 1, {
      addr: ADDR.TX_BUF,
      lower: dataDesc(p.frame.length, EOP | RS | TXD_CMD.TSE),
      upper: (POPTS.TXSM | POPTS.IXSM) << 8,
    });
    wr(r.dev, R.TDT, 2);
    await settle(r.dev);
    assert.equal(r.wire.received.length, 3);
    r.wire.send(frame(RIG_MAC, 1400));
    await settle(r.dev);
    assert.equal(descView(r, ADDR.RX_RING, 0).getUint16(8, true), 1418);
    assert.equal(r.mem.live, 0, "no mapping left behind");
  }
});
