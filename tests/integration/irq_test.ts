/**
 * Interrupt delivery through eventfds passed with SET_IRQS: MSI-X vectors (with client-side
 * masking) and INTx (level, automasked until SET_IRQS UNMASK). "Did not fire" is decided
 * without timing: once the completion is visible in the used ring and a later command has been
 * answered, the server has already signalled whatever it was going to signal.
 */
import assert from "node:assert/strict";
import { IrqIndex, IrqSetFlags } from "../../protocol/irq.ts";
import { pollUntil, VirtioBlkDriver } from "../../client/mod.ts";
import { ConfigReg, PciStatus } from "../../spec/pci.ts";
import { BlkStatus, ReqType } from "../../spec/virtio_blk.ts";
import { openBlkSession, startVfud } from "./helpers.ts";

const { DATA_NONE, ACTION_MASK, ACTION_UNMASK } = IrqSetFlags;
const { INTX, MSIX } = IrqIndex;

/** Enqueues a 4 KiB read and kicks; returns its head. */
async function startRead(driver: VirtioBlkDriver, sector = 0n): Promise<number> {
  const head = driver.enqueue({ type: ReqType.IN, sector, readLength: 4096 });
  await driver.kick();
  return head;
}

/** Waits (bounded, polling the used ring) until `n` more completions were published. */
async function usedAdvanced(driver: VirtioBlkDriver, n = 1): Promise<void> {
  let got = 0;
  await pollUntil(() => ((got += driver.reap()) >= n ? true : undefined), "used ring");
}

Deno.test("irq: MSI-X eventfd fires on completion; a masked vector fires on unmask", async () => {
  await using vfud = await startVfud();
  await using s = await openBlkSession(vfud, { interrupts: "msix" });
  const { driver, client } = s;
  const [vec0] = driver.irqs!.msix;
  assert.equal(vec0.take(), 0n);

  const head = await startRead(driver);
  assert.ok((await vec0.wait(client.loop)) >= 1n, "vector 0 fired");
  driver.reap();
  assert.equal((await driver.wait(head)).status, BlkStatus.OK);

  // Mask vector 0 from the client side (SET_IRQS DATA_NONE|ACTION_MASK).
  await client.setIrqs({ index: MSIX, flags: DATA_NONE | ACTION_MASK, start: 0, count: 1 });
  const h2 = await startRead(driver, 8n);
  await usedAdvanced(driver);
  await client.getInfo(); // a round trip after the completion
  assert.equal(vec0.take(), 0n, "a masked vector does not fire");
  // Unmasking delivers the pending interrupt before the reply.
  await client.setIrqs({ index: MSIX, flags: DATA_NONE | ACTION_UNMASK, start: 0, count: 1 });
  assert.equal(vec0.take(), 1n, "pending vector delivered on unmask");
  assert.equal((await driver.wait(h2)).status, BlkStatus.OK);

  // And it is not delivered twice.
  await client.getInfo();
  assert.equal(vec0.take(), 0n);
  assert.deepEqual(client.violations, []);
});

Deno.test("irq: INTx fires once, then only after SET_IRQS UNMASK", async () => {
  await using vfud = await startVfud();
  await using s = await openBlkSession(vfud, { interrupts: "intx" });
  const { driver, client } = s;
  const intx = driver.irqs!.intx!;
  const status = async () =>
    (await driver.pci.read16(ConfigReg.STATUS)) & PciStatus.INTERRUPT_STATUS;

  // First completion: the line goes up and the eventfd fires.
  const h1 = await startRead(driver);
  assert.ok((await intx.wait(client.loop)) >= 1n, "INTx fired");
  await usedAdvanced(driver);
  assert.equal((await driver.wait(h1)).status, BlkStatus.OK);
  assert.ok(await status(), "STATUS.INTERRUPT_STATUS set while the line is asserted");
  assert.equal((await driver.readIsr()) & 1, 1, "ISR queue bit");
  assert.equal(await status(), 0, "reading ISR lowers the line");

  // Second completion without an unmask: automasked, no signal.
  const h2 = await startRead(driver, 8n);
  await usedAdvanced(driver);
  assert.equal((await driver.wait(h2)).status, BlkStatus.OK);
  await client.getInfo();
  assert.equal(intx.take(), 0n, "automasked INTx does not fire again");
  assert.ok(await status(), "but the line is asserted");

  // UNMASK with the line still up: fires at once (before the reply).
  await client.setIrqs({ index: INTX, flags: DATA_NONE | ACTION_UNMASK, start: 0, count: 1 });
  assert.equal(intx.take(), 1n, "fires on unmask");

  // Lower the line, unmask: nothing; the next completion fires again.
  await driver.readIsr();
  await client.setIrqs({ index: INTX, flags: DATA_NONE | ACTION_UNMASK, start: 0, count: 1 });
  assert.equal(intx.take(), 0n);
  const h3 = await startRead(driver, 16n);
  assert.ok((await intx.wait(client.loop)) >= 1n, "fires again after unmask");
  await usedAdvanced(driver);
  assert.equal((await driver.wait(h3)).status, BlkStatus.OK);
  assert.deepEqual(client.violations, []);
});

Deno.test("irq: INTx completion loop as a VMM runs it (ISR read + unmask per interrupt)", async () => {
  await using vfud = await startVfud();
  await using s = await openBlkSession(vfud, { interrupts: "intx" });
  for (let i = 0; i < 20; i++) {
    const data = await s.driver.read(BigInt(i * 8), 8);
    assert.deepEqual(data, vfud.initialImage!.subarray(i * 4096, (i + 1) * 4096));
  }
  assert.deepEqual(s.client.violations, []);
});
