import assert from "node:assert/strict";
import { ICR, R } from "../../spec/e1000.ts";
import { Interrupts } from "./interrupts.ts";
import { rd, rig, wr } from "./testing.ts";

Deno.test("ICR: read-to-clear lowers INTx; causes only interrupt when enabled in IMS", () => {
  const { dev, ctx } = rig();
  wr(dev, R.ICS, ICR.RXT0);
  assert.deepEqual(ctx.triggers, [], "masked");
  assert.equal(rd(dev, R.ICS), ICR.RXT0, "ICS reads like ICR without clearing");
  wr(dev, R.IMS, ICR.RXT0 | ICR.TXDW);
  assert.deepEqual(ctx.triggers, [0]);
  assert.equal(rd(dev, R.IMS), ICR.RXT0 | ICR.TXDW);
  assert.equal(rd(dev, R.ICR), ICR.RXT0);
  assert.equal(ctx.lowered, 1);
  assert.equal(rd(dev, R.ICR), 0);
  wr(dev, R.IMC, ICR.RXT0);
  assert.equal(rd(dev, R.IMS), ICR.TXDW);
  wr(dev, R.ICS, ICR.RXT0);
  assert.deepEqual(ctx.triggers, [0]);
  wr(dev, R.ICS, ICR.TXDW);
  assert.deepEqual(ctx.triggers, [0, 0]);
  wr(dev, R.IMC, 0xffffffff);
  assert.equal(ctx.lowered, 2, "IMC masking everything lowers the line");
  wr(dev, R.ICR, ICR.TXDW);
  assert.equal(rd(dev, R.ICS), ICR.RXT0, "ICR write-1-to-clear");
});

Deno.test("ITR: a second assertion waits for the interval on a timer", async () => {
  let now = 1000;
  const events: string[] = [];
  const irq = new Interrupts(() => ({
    trigger: () => events.push(`up@${now}`),
    lowerIntx: () => events.push("down"),
  }), () => now);
  irq.setItr(20000); // 20000 * 256 ns = 5.12 ms
  irq.enable(ICR.RXT0);
  irq.raise(ICR.RXT0);
  irq.readIcr();
  now += 1;
  irq.raise(ICR.RXT0);
  assert.deepEqual(events, ["up@1000", "down"], "held back by ITR");
  now += 10;
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(events, ["up@1000", "down", "up@1011"]);
  irq.readIcr();
  irq.setItr(0);
  irq.raise(ICR.RXT0);
  assert.equal(events.at(-1), "up@1011", "ITR 0: immediate");
  irq.close();
});

Deno.test("ITR: clearing the cause before the timer fires cancels it", async () => {
  let ups = 0;
  const irq = new Interrupts(() => ({ trigger: () => ups++, lowerIntx: () => {} }));
  irq.setItr(0xffff);
  irq.enable(ICR.TXDW);
  irq.raise(ICR.TXDW);
  irq.readIcr();
  irq.raise(ICR.TXDW);
  irq.readIcr();
  await new Promise((r) => setTimeout(r, 25));
  assert.equal(ups, 1);
  irq.close();
});
