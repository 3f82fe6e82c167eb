/**
 * DMA map limits a hostile client cannot push past: the advertised max_dma_maps is one the
 * process can honour (every fd-backed map is an mmap, and the kernel allows a process only
 * vm.max_map_count of them, V8's heap included). Regression: ~65,500 small fd-backed maps (below
 * the 65535 advertised) exhausted the map count and V8 aborted with a fatal OOM.
 */
import assert from "node:assert/strict";
import { Command } from "../../protocol/header.ts";
import { DmaMap } from "../../protocol/dma.ts";
import { Errno, MemfdRam, VfioUserRequestError } from "../../client/mod.ts";
import { assertServesFreshClient, connect, startVfud } from "./helpers.ts";

const PAGE = 4096;

Deno.test("hostile DMA_MAP: maps up to the advertised max_dma_maps, then ENOSPC; vfud lives", async () => {
  await using v = await startVfud();
  const maxMapCount = Number(Deno.readTextFileSync("/proc/sys/vm/max_map_count").trim());
  const tries = Math.min(65535, maxMapCount); // what used to kill it: below the old 65535
  const ram = new MemfdRam(tries * PAGE);
  try {
    await using c = await connect(v, { timeoutMs: 60_000, version: false });
    const advertised = (await c.version()).caps?.maxDmaMaps ?? 65535;
    assert.ok(advertised < maxMapCount, `max_dma_maps ${advertised} fits in ${maxMapCount}`);
    let ok = 0;
    const refused: number[] = [];
    // Pipelined, one page each, every other page so that no two maps merge into one mapping.
    for (let i = 0; i < tries; i += 512) {
      const batch = [];
      for (let j = i; j < Math.min(i + 512, tries); j++) {
        const payload = DmaMap.encodeRequest({
          flags: 3,
          offset: BigInt(j * PAGE),
          address: BigInt(j) * 2n * BigInt(PAGE),
          size: BigInt(PAGE),
        });
        batch.push(
          c.request(Command.DMA_MAP, payload, { fds: [ram.fd!] }).then(
            () => ok++,
            (e) => {
              assert.ok(e instanceof VfioUserRequestError, String(e));
              refused.push(e.errno);
            },
          ),
        );
      }
      await Promise.all(batch);
    }
    assert.ok(!v.exited, `vfud died:\n${v.log().slice(-2000)}`);
    assert.equal(ok, advertised, "every map up to the advertised limit succeeded");
    assert.equal(refused.length, tries - advertised);
    assert.deepEqual([...new Set(refused)], [Errno.ENOSPC], "the rest were refused: ENOSPC");
    assert.ok((await c.getInfo()).numRegions >= 9, "still serving");
  } finally {
    ram.close();
  }
  await assertServesFreshClient(v);
});
