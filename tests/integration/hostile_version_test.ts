/**
 * A hostile client's VERSION: every negotiated value is checked against bounds the server can
 * live with (README, "Limits"). Regression: max_data_xfer_size 0 made the message-DMA chunk loop
 * spin forever with memory growing.
 */
import assert from "node:assert/strict";
import { ArrayRam, Errno, GuestArena, VirtioBlkDriver } from "../../client/mod.ts";
import { MIN_DATA_XFER_SIZE } from "../../protocol/negotiate.ts";
import { assertErrno, assertServesFreshClient, connect, startVfud } from "./helpers.ts";

function caps(c: Record<string, unknown>): string {
  return JSON.stringify({ capabilities: c });
}

Deno.test("hostile VERSION: max_data_xfer_size below the bound is refused (0 used to spin forever)", async () => {
  await using v = await startVfud();
  for (const bad of [0, 1, MIN_DATA_XFER_SIZE - 1]) {
    await using c = await connect(v, { version: false });
    await assertErrno(
      c.version(caps({ max_data_xfer_size: bad })),
      Errno.EINVAL,
      `max_data_xfer_size ${bad}`,
    );
  }
  for (const [key, bad] of [["max_msg_fds", 0], ["max_dma_maps", 0]] as const) {
    await using c = await connect(v, { version: false });
    await assertErrno(c.version(caps({ [key]: bad })), Errno.EINVAL, `${key} ${bad}`);
  }
  await assertServesFreshClient(v);
});

Deno.test("hostile VERSION: max_data_xfer_size at the bound works for message DMA", async () => {
  await using v = await startVfud();
  await using c = await connect(v, { version: false });
  const r = await c.version(caps({ max_data_xfer_size: MIN_DATA_XFER_SIZE, max_msg_fds: 1 }));
  assert.equal(r.caps?.maxDataXferSize, MIN_DATA_XFER_SIZE);
  // Private guest RAM: every guest access is DMA_READ/DMA_WRITE in chunks of at most the bound.
  const ram = new ArrayRam(4 << 20);
  await c.dmaMap({ iova: 0n, size: BigInt(ram.bytes.length), backing: ram.bytes });
  const drv = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram.bytes) });
  try {
    const data = crypto.getRandomValues(new Uint8Array(64 * 1024));
    await drv.write(8n, data);
    assert.deepEqual(await drv.read(8n, data.length / 512), data);
  } finally {
    drv.close();
  }
  assert.ok(c.dmaStats.reads > 16, "the data went in many small DMA messages");
  assert.deepEqual(c.violations, []);
});
