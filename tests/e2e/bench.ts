/**
 * `deno task bench`: virtio-blk as a 1-vCPU QEMU 11.1 guest sees it, for every way of giving it a
 * disk, from one run, so the ratios are what to read (this machine is noisy):
 *
 *   vfud-shared   vfud over vfio-user, guest RAM shared (mmap DMA, zero copy)
 *   vfud-private  vfud over vfio-user, guest RAM private (message DMA: DMA_READ/DMA_WRITE)
 *   qemu          QEMU's in-process virtio-blk-pci
 *   vhost         qemu-storage-daemon exporting vhost-user-blk (the other out-of-process way)
 *
 * each with the image in the host page cache ("cache") and with O_DIRECT backing ("direct":
 * cache.direct=on for QEMU and qemu-storage-daemon, direct=on for vfud; the image on the host's
 * file system). The same 1 GiB image (written once with data, so no reads of holes) and the same
 * guest boot for all. fio in the guest (tests/e2e/guest/blk-bench.sh): 4 KiB random reads at
 * QD1, QD16, QD32, 4 KiB random writes at QD16, 1 MiB sequential reads and writes (QD4); median
 * of --reps repetitions with min and max, ratios vfud/qemu and vfud/vhost.
 *
 * Also: vfud's CPU seconds per GiB moved and RSS (idle, under load), its start-to-listening
 * time, e1000 TCP throughput both ways through a tap in a private network namespace against
 * QEMU's in-process e1000, and 8 vfud processes (8 disks) on one guest.
 *
 * Usage: deno task bench [--reps=3] [--seconds=5] [--only=blk,startup,e1000,scale]
 *        [--systems=vfud-shared,vfud-private,qemu,vhost] [--modes=cache,direct]
 *        [--jobs=randread_qd1,...] [--json=bench.json] [--device-options=aio=threads,...]
 *        [-- extra vfud options]
 * Writes the table to stdout and everything measured to the JSON file.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  preparePrerequisites,
  qemuVersionLine,
  runGuest,
  StorageDaemon,
  Vfud,
  workDir,
} from "./lib.ts";
import { benchE1000 } from "./bench_net.ts";
import { median, procStats, sampleMax } from "./bench_util.ts";

/** fio jobs of guest/blk-bench.sh, in table order. */
const JOBS = [
  ["randread_qd1", "4k randread QD1", "iops"],
  ["randread_qd16", "4k randread QD16", "iops"],
  ["randread_qd32", "4k randread QD32", "iops"],
  ["randwrite_qd16", "4k randwrite QD16", "iops"],
  ["seqread_1m", "1M seq read", "MBps"],
  ["seqwrite_1m", "1M seq write", "MBps"],
] as const;
type Job = typeof JOBS[number][0];

const SYSTEMS = {
  "vfud-shared": "vfud, shared RAM (mmap DMA)",
  "vfud-private": "vfud, private RAM (message DMA)",
  qemu: "QEMU in-process virtio-blk",
  vhost: "qemu-storage-daemon vhost-user-blk",
} as const;
type System = keyof typeof SYSTEMS;
type Mode = "cache" | "direct";

/** One system in one cache mode: per job, the value of every repetition. */
interface Cell {
  system: System;
  mode: Mode;
  values: Partial<Record<Job, number[]>>;
  /** vfud only: CPU seconds per GiB moved, RSS in KiB. */
  cpuSecondsPerGiB?: number[];
  rssIdleKiB?: number;
  rssLoadKiB?: number;
}

const GiB = 2 ** 30;

interface Setup {
  dir: string;
  image: string;
  seconds: number;
  jobs: Job[];
  vfudArgs: string[];
  /** Appended to vfud's virtio-blk device spec (",aio=threads"), or "". */
  deviceOptions: string;
}

/** Reads the whole image so it sits in the page cache (cache mode), or drops it (direct). */
async function pageCache(image: string, mode: Mode): Promise<void> {
  if (mode === "cache") {
    const f = await Deno.open(image);
    const buf = new Uint8Array(1 << 20);
    while ((await f.read(buf)) !== null) { /* just touch it */ }
    f.close();
  } else {
    // write back and evict, so O_DIRECT runs do not start from a cached image
    await new Deno.Command("sh", { args: ["-c", "sync; echo 1 > /proc/sys/vm/drop_caches"] })
      .output();
  }
}

async function runOnce(s: Setup, cell: Cell): Promise<void> {
  const direct = cell.mode === "direct";
  await pageCache(s.image, cell.mode);
  let vfud: Vfud | undefined;
  let qsd: StorageDaemon | undefined;
  try {
    const guest: Parameters<typeof runGuest>[0] = {
      script: "guest/blk-bench.sh",
      fio: true,
      env: { VFUD_BENCH_S: s.seconds, VFUD_BENCH_JOBS: s.jobs.join(" ") },
      timeoutS: 60 + s.jobs.length * (s.seconds + 5),
      mem: cell.system === "vfud-private" ? "private" : "shared",
    };
    if (cell.system === "qemu") guest.disks = [`${s.image}${direct ? ",direct=on" : ""}`];
    else if (cell.system === "vhost") {
      qsd = await StorageDaemon.start({ dir: s.dir, image: s.image, direct });
      guest.vhostUserBlk = [qsd.socket];
    } else {
      vfud = await Vfud.start({
        dir: s.dir,
        device: `virtio-blk,file=${s.image}${direct ? ",direct=on" : ""}${s.deviceOptions}`,
        extraArgs: ["--log-level=warning", ...s.vfudArgs],
      });
      guest.vfu = [vfud.socket];
      await new Promise((r) => setTimeout(r, 300)); // idle: after start-up allocations
      cell.rssIdleKiB = Math.max(cell.rssIdleKiB ?? 0, (await procStats(vfud.child.pid)).rssKiB);
    }
    const before = vfud ? await procStats(vfud.child.pid) : undefined;
    const peak = vfud ? sampleMax(vfud.child.pid) : undefined;
    const run = await runGuest(guest);
    const rss = await peak?.stop();
    if (run.code !== 0 || run.results.status !== "ok") {
      throw new Error(
        `${cell.system}/${cell.mode}: guest failed\n${run.stdout}\n${run.stderr}` +
          (vfud ? await vfud.describe() : ""),
      );
    }
    let bytes = 0;
    for (const job of s.jobs) {
      const [, , unit] = JOBS.find((j) => j[0] === job)!;
      const v = Number(run.results[`${job}_${unit}`]);
      (cell.values[job] ??= []).push(v);
      bytes += Number(run.results[`${job}_MBps`]) * 1e6 * s.seconds;
    }
    if (vfud && before) {
      const after = await procStats(vfud.child.pid);
      (cell.cpuSecondsPerGiB ??= []).push((after.cpuSeconds - before.cpuSeconds) / (bytes / GiB));
      cell.rssLoadKiB = Math.max(cell.rssLoadKiB ?? 0, rss ?? 0);
    }
  } finally {
    await vfud?.stop();
    await qsd?.stop();
  }
}

/** Start-to-listening time of vfud: spawn to a listening socket, median of `n` starts. */
async function startupMs(dir: string, image: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const v = await Vfud.start({ dir, image, socket: `${dir}/start.sock` });
    out.push(performance.now() - t0);
    await v.stop();
  }
  return out;
}

/** 8 vfud processes (one disk each) on one guest: all disks at once. */
async function scaling(s: Setup, disks: number) {
  const vfuds: Vfud[] = [];
  try {
    for (let i = 0; i < disks; i++) {
      const image = `${s.dir}/scale${i}.img`;
      await Deno.writeFile(image, new Uint8Array(0));
      await Deno.truncate(image, 256 << 20);
      vfuds.push(
        await Vfud.start({
          dir: s.dir,
          image,
          socket: `${s.dir}/scale${i}.sock`,
          extraArgs: ["--log-level=warning", ...s.vfudArgs],
        }),
      );
    }
    const before = await Promise.all(vfuds.map((v) => procStats(v.child.pid)));
    const peaks = vfuds.map((v) => sampleMax(v.child.pid));
    const jobs = ["randread_qd16", "seqread_1m"];
    const run = await runGuest({
      script: "guest/blk-bench.sh",
      fio: true,
      vfu: vfuds.map((v) => v.socket),
      memSize: "1G",
      env: { VFUD_BENCH_S: s.seconds, VFUD_BENCH_JOBS: jobs.join(" "), VFUD_BENCH_DISKS: disks },
      timeoutS: 180,
    });
    const rss = await Promise.all(peaks.map((p) => p.stop()));
    if (run.code !== 0) throw new Error(`scaling: guest failed\n${run.stdout}`);
    const after = await Promise.all(vfuds.map((v) => procStats(v.child.pid)));
    const cpu = after.map((a, i) => a.cpuSeconds - before[i].cpuSeconds);
    return {
      disks,
      randread_qd16_iops_total: Number(run.results.randread_qd16_iops),
      seqread_1m_MBps_total: Number(run.results.seqread_1m_MBps),
      seconds: 2 * s.seconds,
      cpuSecondsPerProcess: cpu,
      rssPeakKiBPerProcess: rss,
    };
  } finally {
    for (const v of vfuds) await v.stop().catch(() => v.kill());
  }
}

function fmt(v: number | undefined, unit: string): string {
  if (v === undefined || Number.isNaN(v)) return "-";
  return unit === "iops" ? String(Math.round(v)) : v.toFixed(0);
}

function spread(xs: number[] | undefined): string {
  if (!xs?.length) return "";
  return xs.length > 1 ? ` [${Math.round(Math.min(...xs))}-${Math.round(Math.max(...xs))}]` : "";
}

function table(cells: Cell[], jobs: Job[], mode: Mode): string {
  const inMode = cells.filter((c) => c.mode === mode);
  const ref = (sys: System, job: Job) =>
    median(inMode.find((c) => c.system === sys)?.values[job] ?? []);
  const header = ["system", ...jobs.map((j) => JOBS.find((x) => x[0] === j)![1])];
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
  ];
  for (const c of inMode) {
    const row: string[] = [SYSTEMS[c.system]];
    for (const job of jobs) {
      const unit = JOBS.find((j) => j[0] === job)![2];
      const m = median(c.values[job] ?? []);
      let text = `${fmt(m, unit)}${spread(c.values[job])}`;
      if (c.system.startsWith("vfud")) {
        const q = ref("qemu", job), v = ref("vhost", job);
        const r = [q ? `${(m / q).toFixed(2)}x` : "", v ? `${(m / v).toFixed(2)}x` : ""];
        text += ` (${r.join(" / ")})`;
      }
      row.push(text);
    }
    lines.push(`| ${row.join(" | ")} |`);
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      reps: { type: "string", default: "3" },
      seconds: { type: "string", default: "5" },
      only: { type: "string", default: "blk,startup,e1000,scale" },
      systems: { type: "string", default: Object.keys(SYSTEMS).join(",") },
      modes: { type: "string", default: "cache,direct" },
      jobs: { type: "string", default: JOBS.map((j) => j[0]).join(",") },
      json: { type: "string", default: "bench.json" },
      "image-mb": { type: "string", default: "1024" },
      "device-options": { type: "string", default: "" },
    },
  });
  const only = new Set(values.only.split(","));
  const systems = values.systems.split(",") as System[];
  for (const s of systems) if (!(s in SYSTEMS)) throw new Error(`--systems: unknown ${s}`);
  const modes = values.modes.split(",") as Mode[];
  const jobs = values.jobs.split(",") as Job[];
  for (const j of jobs) if (!JOBS.some((x) => x[0] === j)) throw new Error(`--jobs: unknown ${j}`);
  const reps = Number(values.reps);
  await preparePrerequisites();
  const qemu = await qemuVersionLine();
  // the image on the host's real file system (O_DIRECT runs must reach a disk)
  const wd = await workDir("bench");
  const image = `${wd.path}/bench.img`;
  const setup: Setup = {
    dir: wd.path,
    image,
    seconds: Number(values.seconds),
    jobs,
    vfudArgs: positionals,
    deviceOptions: values["device-options"] ? `,${values["device-options"]}` : "",
  };
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    qemu,
    host: { cpus: navigator.hardwareConcurrency },
    reps,
    secondsPerJob: setup.seconds,
    guest: "1 vCPU TCG, 512 MiB",
  };
  let ok = false;
  try {
    if (only.has("blk")) {
      // data everywhere (reads of holes would cost nothing)
      const mb = Number(values["image-mb"]);
      const dd = await new Deno.Command("dd", {
        args: ["if=/dev/urandom", `of=${image}`, "bs=1M", `count=${mb}`, "status=none"],
      }).output();
      if (!dd.success) throw new Error("could not write the bench image");
      const cells: Cell[] = [];
      for (const mode of modes) {
        for (const system of systems) cells.push({ system, mode, values: {} });
      }
      // repetitions interleaved: drifting machine load hits every system alike
      for (let r = 0; r < reps; r++) {
        for (const cell of cells) {
          console.error(`[bench] rep ${r + 1}/${reps}: ${cell.system} (${cell.mode})`);
          await runOnce(setup, cell);
        }
      }
      report.blk = cells;
      for (const mode of modes) {
        console.log(
          `\n### virtio-blk, image ${mode === "cache" ? "in the page cache" : "O_DIRECT"}`,
        );
        console.log("(IOPS or MB/s, median [min-max]; vfud: ratio to QEMU / to vhost-user-blk)\n");
        console.log(table(cells, jobs, mode));
      }
      console.log("\nvfud CPU seconds per GiB moved, RSS idle / peak under load:");
      for (const c of cells.filter((c) => c.system.startsWith("vfud"))) {
        console.log(
          `  ${c.system} (${c.mode}): ${median(c.cpuSecondsPerGiB ?? []).toFixed(2)} s/GiB, ` +
            `RSS ${Math.round((c.rssIdleKiB ?? 0) / 1024)} / ${
              Math.round((c.rssLoadKiB ?? 0) / 1024)
            } MiB`,
        );
      }
    }
    if (only.has("startup")) {
      const ms = await startupMs(wd.path, `${wd.path}/start.img`, 5).catch(async (e) => {
        await Deno.writeFile(`${wd.path}/start.img`, new Uint8Array(1 << 20));
        return startupMs(wd.path, `${wd.path}/start.img`, 5).catch(() => {
          throw e;
        });
      });
      report.startToListeningMs = ms;
      console.log(`\nvfud start to listening: median ${median(ms).toFixed(0)} ms${spread(ms)}`);
    }
    if (only.has("e1000")) {
      const net = await benchE1000(wd.path, reps);
      report.e1000 = net;
      console.log(`\n### e1000 over a tap (TCP, MB/s, median of ${reps})\n`);
      console.log("| system | guest upload | guest download |\n|---|---|---|");
      for (const r of net) {
        console.log(`| ${r.name} | ${r.upload.toFixed(1)} | ${r.download.toFixed(1)} |`);
      }
    }
    if (only.has("scale")) {
      const sc = await scaling(setup, 8);
      report.scaling = sc;
      console.log(
        `\n8 vfud processes, 8 disks, one guest: 4k randread QD16 ${sc.randread_qd16_iops_total} ` +
          `IOPS total, 1M seq read ${sc.seqread_1m_MBps_total} MB/s total; per process: ` +
          `RSS peak ${Math.round(median(sc.rssPeakKiBPerProcess) / 1024)} MiB, CPU ${
            median(sc.cpuSecondsPerProcess).toFixed(2)
          } s over ${sc.seconds} s`,
      );
    }
    await Deno.writeTextFile(values.json, JSON.stringify(report, null, 2) + "\n");
    console.log(`\n(${qemu}; all figures in ${values.json})`);
    ok = true;
  } finally {
    await wd.done(ok);
  }
}
