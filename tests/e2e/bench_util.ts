/**
 * Small helpers of the benchmark: medians and a process's CPU time and memory from /proc (read
 * with `cat`: Deno lets only --allow-all read /proc directly).
 *
 * @module
 */

/** Median of `xs` (NaN when empty). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const td = new TextDecoder();

async function cat(path: string): Promise<string> {
  const out = await new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" })
    .output();
  return td.decode(out.stdout);
}

/** CPU seconds (user + system, all threads) and resident memory of a process. */
export async function procStats(pid: number): Promise<{ cpuSeconds: number; rssKiB: number }> {
  const [stat, status] = await Promise.all([cat(`/proc/${pid}/stat`), cat(`/proc/${pid}/status`)]);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return { cpuSeconds: ticks / 100, rssKiB: rss };
}

/** Samples a process's RSS every 250 ms until `stop()`, which resolves with the highest. */
export function sampleMax(pid: number): { stop(): Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const s = await procStats(pid).catch(() => undefined);
      if (s && s.rssKiB > max) max = s.rssKiB;
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return max;
    },
  };
}
