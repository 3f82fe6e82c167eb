/**
 * Mapping lifetime against a hostile client: a request that waits for a DMA reply while the
 * client unmaps (or disconnects from) an fd-backed map the same request uses. Nothing may touch
 * a map after its DMA_UNMAP is acknowledged, and an unmap never frees memory a request still
 * holds. Regression: vfud resumed the request and wrote through the freed view (SIGSEGV).
 */
import assert from "node:assert/strict";
import {
  ArrayRam,
  GuestArena,
  MemfdRam,
  pollUntil,
  virtioBlk,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { assertServesFreshClient, connect, startVfud } from "./helpers.ts";

const MiB = 1 << 20;
const DATA_IOVA = 0x1000000n;

/**
 * Rings, request headers and status bytes in an fd-backed map at 0; data buffers in a
 * message-based map at 16 MiB. A read request's data goes out as a posted DMA_WRITE whose
 * acknowledgement the client holds back: vfud's status-byte write into the fd-backed map waits
 * for it. Then the client ends the fd-backed map (`end`), and only then acknowledges.
 */
async function unmapWhileWaiting(end: "unmap" | "unmap-all") {
  await using v = await startVfud();
  const rings = new MemfdRam(MiB);
  const data = new ArrayRam(MiB);
  try {
    await using c = await connect(v, { timeoutMs: 10_000 });
    await c.dmaMap({ iova: 0n, size: BigInt(MiB), fd: rings.fd, backing: rings.bytes });
    await c.dmaMap({ iova: DATA_IOVA, size: BigInt(MiB), backing: data.bytes });
    const drv = await VirtioBlkDriver.create(c, {
      arena: new GuestArena(0n, rings.bytes),
      dataArena: new GuestArena(DATA_IOVA, data.bytes),
    });
    try {
      c.serveDma = false; // hold back what vfud asks of us
      drv.enqueue({ type: virtioBlk.ReqType.IN, sector: 0n, readLength: 4096 });
      await drv.kick();
      await pollUntil(() => (c.heldDma().length > 0 ? true : undefined), "the posted DMA_WRITE");
      if (end === "unmap") await c.dmaUnmap({ iova: 0n, size: BigInt(MiB) });
      else await c.dmaUnmap({ iova: 0n, size: 0n, flags: 2 });
      // From the acknowledgement on, vfud must not touch the map: remember what it holds.
      const after = rings.bytes.slice();
      c.serveDma = true;
      assert.ok(c.serveHeldDma() > 0);
      // vfud resumes the request now: it must neither crash nor write into the unmapped pages.
      assert.ok((await c.getInfo()).numRegions >= 9, "vfud still answers");
      await c.getInfo();
      assert.ok(!v.exited, `vfud died:\n${v.log()}`);
      assert.deepEqual(rings.bytes, after, "vfud wrote into a map after its DMA_UNMAP reply");
    } finally {
      drv.close();
    }
  } finally {
    rings.close();
  }
  await assertServesFreshClient(v);
}

Deno.test("hostile unmap: a request waiting on a DMA reply outlives the DMA_UNMAP of its map", async () => {
  await unmapWhileWaiting("unmap");
});

Deno.test("hostile unmap: ... and DMA_UNMAP ALL", async () => {
  await unmapWhileWaiting("unmap-all");
});

Deno.test("hostile unmap: a client that disconnects while vfud waits for its DMA reply", async () => {
  await using v = await startVfud();
  const rings = new MemfdRam(MiB);
  const data = new ArrayRam(MiB);
  try {
    const c = await connect(v, { timeoutMs: 10_000 });
    await c.dmaMap({ iova: 0n, size: BigInt(MiB), fd: rings.fd, backing: rings.bytes });
    await c.dmaMap({ iova: DATA_IOVA, size: BigInt(MiB), backing: data.bytes });
    const drv = await VirtioBlkDriver.create(c, {
      arena: new GuestArena(0n, rings.bytes),
      dataArena: new GuestArena(DATA_IOVA, data.bytes),
    });
    c.serveDma = false;
    drv.enqueue({ type: virtioBlk.ReqType.IN, sector: 0n, readLength: 4096 });
    await drv.kick();
    await pollUntil(() => (c.heldDma().length > 0 ? true : undefined), "the posted DMA_WRITE");
    const after = rings.bytes.slice();
    drv.close();
    await c.close();
    await assertServesFreshClient(v);
    assert.deepEqual(rings.bytes, after, "vfud wrote into the memory of a client that left");
  } finally {
    rings.close();
  }
});
