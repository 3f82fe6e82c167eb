import assert from "node:assert/strict";
import { FakeContext, FakeGuestMemory } from "../virtio/testing/fake_memory.ts";
import { memoryPair } from "../net/memory.ts";
import { ICR, R, RCTL, TXD_CMD } from "./constants.ts";
import { E1000 } from "./device.ts";
import {
  ADDR,
  descView,
  frame,
  legacy,
  linkUp,
  putTx,
  rd,
  settle,
  setupRx,
  setupTx,
  wr,
} from "./testing.ts";

Deno.test("two NICs on one cable: a frame sent by one is received by the other", async () => {
  const [a, b] = memoryPair();
  const macA = Uint8Array.of(2, 0, 0, 0, 0, 0xa);
  const macB = Uint8Array.of(2, 0, 0, 0, 0, 0xb);
  const sides = [[a, macA], [b, macB]].map(([backend, mac]) => {
    const mem = new FakeGuestMemory({ size: 1 << 20 });
    const ctx = new FakeContext(mem);
    const dev = new E1000({ backend: backend as typeof a, mac: mac as Uint8Array });
    dev.attach(ctx);
    const r = { dev, mem };
    linkUp(dev);
    setupTx(r);
    setupRx(r, 8, RCTL.BAM);
    wr(dev, R.IMS, ICR.RXT0 | ICR.TXDW);
    return r;
  });
  const [ra, rb] = sides;
  const f = frame(macB, 1000);
  ra.mem.ram.set(f, ADDR.TX_BUF);
  putTx(ra, 0, { addr: ADDR.TX_BUF, lower: legacy(f.length, TXD_CMD.EOP | TXD_CMD.RS) });
  wr(ra.dev, R.TDT, 1);
  await settle(ra.dev);
  await settle(rb.dev);
  assert.equal(rd(rb.dev, R.RDH), 1);
  const len = descView(rb, ADDR.RX_RING, 0).getUint16(8, true);
  assert.equal(len, f.length + 4);
  assert.deepEqual(rb.mem.ram.subarray(ADDR.RX_BUF, ADDR.RX_BUF + f.length), f);
  assert.ok(rd(rb.dev, R.ICR) & ICR.RXT0);
  assert.ok(rd(ra.dev, R.ICR) & ICR.TXDW);
  for (const s of sides) s.dev.close();
});
