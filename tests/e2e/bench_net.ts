/**
 * The e1000 part of `deno task bench`: TCP throughput both ways between the guest and a peer on
 * the host end of a tap, in a private network namespace, for vfud's e1000 and QEMU's in-process
 * e1000 (same guest, same tap set-up, same peer: net_peer.ts).
 *
 * @module
 */
import { MiB, parseKeyValues, preparePrerequisites, prng, runGuest, Vfud } from "./lib.ts";
import { type Background, NetNs, startNetPeer } from "./netns.ts";
import { median } from "./bench_util.ts";

const HOST_IP = "10.0.2.2";
const GUEST_IP = "10.0.2.15";
const TAP = "vfudbench0";
const BYTES = 32 * MiB;

/** Median MB/s of the guest's upload and download. */
export interface NetResult {
  name: string;
  upload: number;
  download: number;
  uploads: number[];
  downloads: number[];
}

async function once(dir: string, system: "vfud" | "qemu"): Promise<{ up: number; down: number }> {
  const ns = await NetNs.create("bench-net");
  let vfud: Vfud | undefined;
  let peer: Background | undefined;
  try {
    await ns.exec(["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
    await ns.exec(["ip", "addr", "add", `${HOST_IP}/24`, "dev", TAP]);
    await ns.exec(["ip", "link", "set", TAP, "up"]);
    const upFile = `${dir}/up.bin`, downFile = `${dir}/down.bin`; // the guest reads /data/up.bin
    await Deno.writeFile(upFile, prng(1, BYTES));
    await Deno.writeFile(downFile, prng(2, BYTES));
    peer = await startNetPeer(ns, {
      host: HOST_IP,
      upBytes: BYTES,
      downFile,
      timeoutS: 200,
      log: `${dir}/net-peer.log`,
    });
    const common = {
      script: "guest/net-e1000.sh",
      files: [upFile],
      env: { PEER_IP: HOST_IP, GUEST_IP, TCP: 1, TCP_TIMEOUT: 150 },
      timeoutS: 200,
      mem: "shared" as const,
    };
    let run;
    if (system === "vfud") {
      vfud = await Vfud.start({
        dir,
        device: `e1000,netdev=tap,ifname=${TAP}`,
        wrap: ns.wrap,
        extraArgs: ["--log-level=warning"],
      });
      run = await runGuest({ ...common, vfu: [vfud.socket] });
    } else {
      run = await runGuest({
        ...common,
        wrap: ns.wrap,
        qemuArgs: [
          "-netdev",
          `tap,id=n0,ifname=${TAP},script=no,downscript=no`,
          "-device",
          "e1000,netdev=n0",
        ],
      });
    }
    if (run.code !== 0 || run.results.net !== "ok") {
      throw new Error(`e1000 ${system}: guest failed\n${run.stdout}\n${peer.output}`);
    }
    const r = parseKeyValues(run.stdout.split("\n").filter((l) => l.startsWith("RESULT ")));
    return { up: Number(r.up_MBps), down: Number(r.down_MBps) };
  } finally {
    await vfud?.stop().catch(() => vfud?.kill());
    await peer?.kill();
    await ns.exec(["ip", "link", "del", TAP]).catch(() => {});
    await ns.close();
  }
}

/** vfud's e1000 and QEMU's, `reps` times each, interleaved. */
export async function benchE1000(dir: string, reps: number): Promise<NetResult[]> {
  await preparePrerequisites();
  const res = {
    vfud: { up: [] as number[], down: [] as number[] },
    qemu: { up: [], down: [] },
  } as Record<"vfud" | "qemu", { up: number[]; down: number[] }>;
  for (let i = 0; i < reps; i++) {
    for (const s of ["vfud", "qemu"] as const) {
      console.error(`[bench] e1000 rep ${i + 1}/${reps}: ${s}`);
      const r = await once(dir, s);
      res[s].up.push(r.up);
      res[s].down.push(r.down);
    }
  }
  return (["vfud", "qemu"] as const).map((s) => ({
    name: s === "vfud" ? "vfud e1000 (tap, shared RAM)" : "QEMU in-process e1000 (tap)",
    upload: median(res[s].up),
    download: median(res[s].down),
    uploads: res[s].up,
    downloads: res[s].down,
  }));
}
