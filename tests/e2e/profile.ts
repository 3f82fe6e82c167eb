/**
 * Where vfud's serving thread spends its time under one fio job from the e2e guest: runs vfud
 * under `deno --cpu-prof`, boots the guest with tests/e2e/guest/blk-bench.sh limited to that
 * job, stops vfud (the serving thread writes its profile when it ends) and prints the functions
 * with the most self time, plus the request rate and vfud's CPU seconds.
 *
 * Usage: deno run -A tests/e2e/profile.ts [--job=randread_qd1] [--seconds=5] [--mem=shared]
 *        [--top=30] [-- extra vfud device options, e.g. direct=on]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { procStats } from "./bench_util.ts";
import { MAIN_TS } from "../vfud.ts";
import { isListening, logFiles, runGuest, spawnLogged, workDir } from "./lib.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** Self time per function of a .cpuprofile, largest first, as "percent ms name file:line". */
export function topFunctions(profile: string, n: number): string[] {
  const p = JSON.parse(profile) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const byName = new Map<string, number>();
  let total = 0;
  for (const node of p.nodes) {
    const t = self.get(node.id) ?? 0;
    total += t;
    const cf = node.callFrame;
    const where = cf.url ? ` ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber + 1}` : "";
    const key = `${cf.functionName || "(anonymous)"}${where}`;
    byName.set(key, (byName.get(key) ?? 0) + t);
  }
  return [...byName].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, t]) =>
    `${(100 * t / total).toFixed(1).padStart(5)}% ${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`
  );
}

/** CPU seconds of every thread of `pid`, by thread id, with its name. */
async function threadCpu(pid: number): Promise<Map<string, { comm: string; cpu: number }>> {
  const script =
    `for t in /proc/${pid}/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) ` +
    `$(cut -d')' -f2 $t/stat | cut -d' ' -f13,14)"; done`;
  const out = await new Deno.Command("sh", { args: ["-c", script], stdout: "piped" }).output();
  const m = new Map<string, { comm: string; cpu: number }>();
  for (const line of new TextDecoder().decode(out.stdout).trim().split("\n")) {
    const [tid, comm, u, s] = line.split(" ");
    m.set(tid, { comm, cpu: (Number(u) + Number(s)) / 100 });
  }
  return m;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      job: { type: "string", default: "randread_qd1" },
      seconds: { type: "string", default: "5" },
      mem: { type: "string", default: "shared" },
      top: { type: "string", default: "30" },
      "image-mb": { type: "string", default: "256" },
    },
  });
  const wd = await workDir("profile");
  const image = `${wd.path}/disk.img`;
  await new Deno.Command("dd", {
    args: ["if=/dev/urandom", `of=${image}`, "bs=1M", `count=${values["image-mb"]}`, "status=none"],
  }).output();
  const profDir = `${wd.path}/prof`;
  const socket = `${wd.path}/vfud.sock`;
  const device = [`virtio-blk,file=${image}`, ...positionals].join(",");
  const { child, pipes } = await spawnLogged(
    [
      Deno.execPath(),
      "run",
      "-A",
      "--cpu-prof",
      `--cpu-prof-dir=${profDir}`,
      MAIN_TS,
      `--socket-path=${socket}`,
      `--device=${device}`,
      "--log-level=warning",
    ],
    logFiles(wd.path, "vfud"),
    { VFUD_PROFILE_GRACE_MS: "1000" },
  );
  const deadline = Date.now() + 30_000;
  while (!(await isListening(socket))) {
    if (Date.now() > deadline) throw new Error("vfud did not listen");
    await new Promise((r) => setTimeout(r, 50));
  }
  const before = await procStats(child.pid);
  const threadsBefore = await threadCpu(child.pid);
  const run = await runGuest({
    script: "guest/blk-bench.sh",
    vfu: [socket],
    mem: values.mem as "shared" | "private",
    fio: true,
    env: { VFUD_BENCH_S: values.seconds, VFUD_BENCH_JOBS: values.job },
    timeoutS: 120,
  });
  const after = await procStats(child.pid);
  const threadsAfter = await threadCpu(child.pid);
  child.kill("SIGTERM");
  await child.status;
  await pipes;
  const r = run.results;
  console.log(
    `${values.job} (${values.mem} RAM, ${device}): ${r[`${values.job}_iops`]} IOPS, ` +
      `${r[`${values.job}_MBps`]} MB/s, ${r[`${values.job}_lat_us`]} µs mean latency; ` +
      `vfud CPU ${(after.cpuSeconds - before.cpuSeconds).toFixed(2)} s`,
  );
  const perThread = new Map<string, number>();
  for (const [tid, t] of threadsAfter) {
    const d = t.cpu - (threadsBefore.get(tid)?.cpu ?? 0);
    perThread.set(t.comm, (perThread.get(t.comm) ?? 0) + d);
  }
  console.log(
    "CPU seconds by thread: " +
      [...perThread].filter(([, s]) => s > 0.005).sort((a, b) => b[1] - a[1])
        .map(([c, s]) => `${c} ${s.toFixed(2)}`).join(", "),
  );
  for await (const e of Deno.readDir(profDir)) {
    if (!e.name.includes("worker")) continue;
    console.log(`\nserving thread (${e.name}), self time:`);
    for (
      const line of topFunctions(
        await Deno.readTextFile(`${profDir}/${e.name}`),
        Number(values.top),
      )
    ) {
      console.log(line);
    }
  }
  await wd.done(run.code === 0);
  if (run.code !== 0) console.error(run.stdout);
}
