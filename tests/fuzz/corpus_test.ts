/**
 * The fuzz corpus (tests/fuzz/corpus/corpus.json) in `deno task test`: each protocol case is
 * replayed on a fresh session of one vfud (after VERSION and a DMA map), and after each case a
 * fresh valid client must be served; the ring seeds replay their guest ring states. A watchdog
 * thread fails the run if anything spins without yielding.
 */
import assert from "node:assert/strict";
import { ClientClosedError, MemfdRam } from "../../client/mod.ts";
import { closeFd } from "../../sys/ffi.ts";
import { assertServesFreshClient, connect, startVfud } from "../integration/helpers.ts";
import { caseBytes, loadCorpus } from "./corpus.ts";
import { fuzzRings } from "./rings.ts";
import { Watchdog } from "../watchdog.ts";
import { makeFd } from "./protocol.ts";

const corpus = loadCorpus();

Deno.test(`fuzz corpus: ${corpus.protocol.length} protocol cases, a fresh client after each`, async () => {
  const dog = new Watchdog(60_000);
  await using v = await startVfud();
  try {
    for (const [i, k] of corpus.protocol.entries()) {
      dog.beat(`protocol case ${i} (${k.outcome})`);
      const ram = new MemfdRam(1 << 20);
      try {
        await using c = await connect(v, { timeoutMs: 20_000 });
        await c.dmaMap({ iova: 0n, size: 1n << 20n, fd: ram.fd, backing: ram.bytes });
        const fds = k.fds.map(makeFd);
        try {
          await c.sendRaw(caseBytes(k), fds);
        } finally {
          fds.forEach(closeFd);
        }
        if (!k.breaksStream) {
          await c.getInfo().catch((e) => {
            if (!(e instanceof ClientClosedError)) throw e; // the server may end the session
          });
        }
      } finally {
        ram.close();
      }
      assert.ok(!v.exited, `case ${i} (${k.outcome}, ${k.hex.slice(0, 64)}...):\n${v.log()}`);
      await assertServesFreshClient(v);
    }
  } finally {
    dog.stop();
  }
});

Deno.test(`fuzz corpus: ${corpus.rings.reduce((n, s) => n + s.states, 0)} guest ring states`, async () => {
  const dog = new Watchdog(60_000);
  try {
    for (const s of corpus.rings) {
      const stats = await fuzzRings(s.seed, s.states, (w) => dog.beat(`ring seed ${s.seed}: ${w}`));
      assert.equal(stats.broken, 0, `ring seed ${s.seed}: a device was left unusable`);
      assert.equal(stats.states, s.states);
    }
  } finally {
    dog.stop();
  }
});
