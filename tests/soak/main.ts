/**
 * `deno task soak`: minutes of mixed guest I/O against one vfud, with reconnects (clean and
 * abrupt, I/O in flight), device resets, both DMA modes (memfd guest RAM and message DMA).
 * vfud's RSS and fd count are sampled while no client is connected and printed; the run fails
 * (exit 1) when the fd count is not constant, when a sample of RSS after warm-up (the first
 * fifth of the run) is more than 10 % away from their median, or when data read back differs
 * from what was written.
 *
 *   deno task soak [--minutes=10] [--seed=N]
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  ArrayRam,
  GuestArena,
  type GuestRam,
  MemfdRam,
  readProcFile,
  VfioUserClient,
  virtioBlk,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { countFds, startVfud, waitNoSession } from "../integration/helpers.ts";
import { Rng, seedFrom } from "../fuzz/rng.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { minutes: { type: "string", default: "10" }, seed: { type: "string" } },
});
const minutes = Number(values.minutes);
const seed = seedFrom(values.seed);
const r = new Rng(seed);
const SECTORS = 16384; // 8 MiB image
console.log(`soak: ${minutes} min, seed ${seed}`);

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readProcFile(`/proc/${pid}/status`) ?? "")?.[1] ?? 0);
}

await using v = await startVfud({ imageSize: SECTORS * 512 });

/**
 * vfud's fd count once the last session's teardown is over: the socket goes first, the
 * session's eventfds a moment later; polled (bounded) until it is back at the first sample's.
 */
async function settledFds(): Promise<number> {
  let n = countFds(v.pid);
  const want = samples[0]?.fds ?? n;
  for (let i = 0; i < 50 && n !== want; i++) {
    await new Promise((r) => setTimeout(r, 20));
    n = countFds(v.pid);
  }
  return n;
}
/** What the disk holds, as far as the soak wrote it (sector -> byte pattern seed). */
const model = new Map<number, number>();
const fill = (s: number, tag: number) => new Uint8Array(512).fill((s * 31 + tag) & 0xff);
const samples: { t: number; rss: number; fds: number }[] = [];
const start = Date.now();
const end = start + minutes * 60_000;
let sessions = 0, ios = 0, resets = 0, abrupt = 0, mismatches = 0, nextSample = start;

while (Date.now() < end) {
  await waitNoSession(v);
  if (Date.now() >= nextSample) {
    const s = { t: (Date.now() - start) / 1000, rss: rssKiB(v.pid), fds: await settledFds() };
    samples.push(s);
    console.log(
      `soak: t=${
        s.t.toFixed(0)
      }s RSS ${s.rss} KiB, ${s.fds} fds, ${sessions} sessions, ${ios} I/Os`,
    );
    nextSample += 10_000;
  }
  if (v.exited) break;
  sessions++;
  const ram: GuestRam = r.chance(0.5) ? new MemfdRam(4 << 20) : new ArrayRam(4 << 20);
  const c = await VfioUserClient.connect(v.socketPath, { timeoutMs: 30_000 });
  let drv: VirtioBlkDriver | undefined;
  try {
    await c.version();
    await c.mapRam(ram);
    drv = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram.bytes) });
    for (let round = r.int(40) + 5; round > 0 && Date.now() < end; round--) {
      const sector = r.int(SECTORS - 8);
      if (r.chance(0.5)) {
        const tag = r.int(256);
        const data = new Uint8Array(4096);
        for (let i = 0; i < 8; i++) data.set(fill(sector + i, tag), i * 512);
        await drv.write(BigInt(sector), data);
        for (let i = 0; i < 8; i++) model.set(sector + i, tag);
      } else {
        const got = await drv.read(BigInt(sector), 8);
        for (let i = 0; i < 8; i++) {
          const tag = model.get(sector + i);
          if (tag === undefined) continue;
          const want = fill(sector + i, tag);
          if (got.subarray(i * 512, i * 512 + 512).some((b, k) => b !== want[k])) mismatches++;
        }
      }
      ios++;
      if (r.chance(0.02)) {
        await c.reset();
        drv.close();
        drv = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram.bytes) });
        resets++;
      }
    }
    if (r.chance(0.3)) {
      // Leave with writes in flight (their sectors are forgotten: they may or may not land).
      for (let i = 0; i < 4; i++) {
        const s = r.int(SECTORS - 8);
        drv.enqueue({ type: virtioBlk.ReqType.OUT, sector: BigInt(s), data: new Uint8Array(512) });
        model.delete(s);
      }
      await drv.kick();
      abrupt++;
    }
  } finally {
    drv?.close();
    await c.close();
    ram.close();
  }
}

const warm = samples.filter((s) => s.t >= (minutes * 60) / 5);
const rss = warm.map((s) => s.rss).sort((a, b) => a - b);
const fds = new Set(samples.slice(1).map((s) => s.fds));
// Every sample after warm-up within 10 % of their median: flat, whatever the GC's timing.
const median = rss[Math.floor(rss.length / 2)] ?? 0;
const lo = rss[0] ?? 0, hi = rss[rss.length - 1] ?? 0;
const spread = median > 0 ? Math.max(hi - median, median - lo) / median : 1;
console.log(
  `soak: seed ${seed}: ${sessions} sessions, ${ios} I/Os, ${resets} resets, ${abrupt} abrupt ` +
    `disconnects, ${mismatches} data mismatches; RSS after warm-up ${lo}..${hi} KiB, median ` +
    `${median} (within ${(spread * 100).toFixed(1)} %), fd counts ${[...fds].join(",")}; vfud ` +
    (v.exited ? "EXITED" : "alive"),
);
const ok = !v.exited && mismatches === 0 && spread <= 0.1 && fds.size === 1 && warm.length > 1;
console.log(`soak: ${ok ? "ok" : "FAILED"}`);
Deno.exit(ok ? 0 : 1);
