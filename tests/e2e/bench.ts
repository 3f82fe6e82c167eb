/**
 * `deno task bench`: dd-style sequential read/write MB/s and fio 4 KiB random-read IOPS of a
 * vfud virtio-blk disk seen from a QEMU 11.1 guest, with guest RAM shared (mmap DMA, zero copy)
 * and private (message DMA through bounce buffers), plus QEMU's in-process virtio-blk as the
 * ceiling — all from one run, so the ratios are what to read (this machine is noisy).
 *
 * Usage: deno task bench [--mb=64] [--reps=1] [--fio-seconds=3] [--only=mmap,message,qemu]
 *        [-- extra vfud options]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { preparePrerequisites, runGuest, Vfud, workDir } from "./lib.ts";

interface Row {
  name: string;
  results: Record<string, string>[];
}

const KEYS = [
  ["dd_read_MBps", "read MB/s"],
  ["dd_write_MBps", "write MB/s"],
  ["fio_randread_qd1_iops", "4k QD1 IOPS"],
  ["fio_randread_qd16_iops", "4k QD16 IOPS"],
] as const;

async function measure(
  name: string,
  mem: "shared" | "private",
  reps: number,
  env: Record<string, string | number>,
  dir: string,
  image: string,
  vfudArgs: string[] | undefined,
): Promise<Row> {
  const row: Row = { name, results: [] };
  const v = vfudArgs ? await Vfud.start({ dir, image, extraArgs: vfudArgs }) : undefined;
  try {
    for (let i = 0; i < reps; i++) {
      const run = await runGuest({
        script: "guest/blk-perf.sh",
        mem,
        fio: true,
        env,
        timeoutS: 600,
        ...(v ? { vfu: [v.socket] } : { disks: [image] }),
      });
      if (run.code !== 0) throw new Error(`${name}: guest failed\n${run.stdout}\n${run.stderr}`);
      row.results.push(run.results);
    }
  } finally {
    await v?.stop();
  }
  return row;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

function table(rows: Row[]): string {
  const cell = (r: Row, k: string) => median(r.results.map((x) => Number(x[k])));
  const base = rows[0];
  const lines = [
    ["", ...KEYS.map(([, label]) => label)].join(" | "),
    ...rows.map((r) =>
      [
        r.name,
        ...KEYS.map(([k]) => {
          const v = cell(r, k);
          return `${v.toFixed(1)} (${(v / cell(base, k)).toFixed(2)}x)`;
        }),
      ].join(" | ")
    ),
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      mb: { type: "string", default: "64" },
      reps: { type: "string", default: "1" },
      "fio-seconds": { type: "string", default: "3" },
      only: { type: "string", default: "mmap,message,qemu" },
    },
  });
  await preparePrerequisites();
  const wd = await workDir("bench");
  const image = `${wd.path}/bench.img`;
  const mb = Number(values.mb);
  await Deno.writeFile(image, new Uint8Array(0));
  await Deno.truncate(image, (mb + 64) * 1024 * 1024);
  const env = { VFUD_PERF_MB: mb, VFUD_FIO_S: Number(values["fio-seconds"]) };
  const reps = Number(values.reps);
  const configs = {
    mmap: ["vfud, mmap DMA (shared RAM)", "shared", positionals],
    message: ["vfud, message DMA (private)", "private", positionals],
    qemu: ["QEMU in-process virtio-blk", "shared", undefined],
  } as const;
  const rows: Row[] = [];
  for (const key of values.only.split(",")) {
    const c = configs[key as keyof typeof configs];
    if (!c) throw new Error(`--only: unknown configuration "${key}" (mmap, message, qemu)`);
    rows.push(await measure(c[0], c[1], reps, env, wd.path, image, c[2] && [...c[2]]));
  }
  console.log(
    `\nvirtio-blk from a 1-vCPU TCG guest, ${mb} MiB dd bs=1M O_DIRECT; median of ${reps}`,
  );
  console.log("(ratios relative to the first row)\n");
  console.log(table(rows));
  await wd.done(true);
}
