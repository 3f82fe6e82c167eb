import assert from "node:assert/strict";
import { ICR, R, TXD_CMD } from "../../spec/e1000.ts";
import { ADDR, descView, frame, legacy, putTx, rd, ready, settle, wr } from "./testing.ts";

Deno.test("two NICs on one cable: a frame sent by one is received by the other", async () => {
  const macB = Uint8Array.of(2, 0, 0, 0, 0, 0xb);
  const sides = [Uint8Array.of(2, 0, 0, 0, 0, 0xa), macB].map((mac) => {
    const r = ready({ mac, rx: { count: 8 }, tx: {} });
    wr(r.dev, R.IMS, ICR.RXT0 | ICR.TXDW);
    return r;
  });
  const [ra, rb] = sides;
  // one cable between the two NICs instead of each to its test wire
  ra.backend.peer = rb.backend;
  rb.backend.peer = ra.backend;
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
