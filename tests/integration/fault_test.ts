/**
 * The fault suite: the client SIGKILLed mid-I/O, 100 times, alternating fd-backed (memfd) and
 * message-based (DMA_READ/DMA_WRITE) guest RAM. vfud keeps running with a constant fd count and
 * flat RSS after warm-up, keeps device state for the next client, serves it, and every write a
 * client saw acknowledged is on the image.
 */
import assert from "node:assert/strict";
import { openFds, readProcFile, sleep, virtio } from "../../client/mod.ts";
import { sectorPattern } from "./fault_client.ts";
import {
  assertServesFreshClient,
  connect,
  countFds,
  readImage,
  startVfud,
  waitNoSession,
} from "./helpers.ts";

const CLIENT = new URL("./fault_client.ts", import.meta.url).pathname;
const KILLS = 100;
/** Sectors each client writes (distinct ranges: no sector is written twice). */
const SPAN = 128;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readProcFile(`/proc/${pid}/status`) ?? "");
  return Number(m?.[1] ?? 0);
}

/**
 * The fd count once the last session's teardown finished (the socket goes before the device
 * quiesced and the last fds of the session are closed): polled, bounded.
 */
async function settledFdCount(pid: number, want: number): Promise<number> {
  let n = countFds(pid);
  for (let i = 0; i < 100 && n !== want; i++) {
    await sleep(20);
    n = countFds(pid);
  }
  return n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Runs one client until it has `acks` acknowledged writes (or is done), then SIGKILLs it. */
async function killMidIo(socket: string, mode: string, first: number, acks: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", CLIENT, socket, mode, String(first), String(SPAN)],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const acked: number[] = [];
  let text = "";
  const reader = child.stdout.getReader();
  const deadline = Date.now() + 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    while (acked.length < acks) {
      const late = new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error("client made no progress")), deadline - Date.now());
      });
      const { value, done } = await Promise.race([reader.read(), late]);
      clearTimeout(timer);
      if (done) break;
      text += new TextDecoder().decode(value);
      const lines = text.split("\n");
      text = lines.pop()!;
      for (const l of lines) if (l.startsWith("ACK ")) acked.push(Number(l.slice(4)));
    }
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }
  // Lines that were already written before the kill still count: read them to the end.
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  for (const l of text.split("\n")) if (l.startsWith("ACK ")) acked.push(Number(l.slice(4)));
  const err = await new Response(child.stderr).text();
  const status = await child.status;
  return { acked, status, err };
}

Deno.test(`fault: the client is SIGKILLed mid-I/O ${KILLS} times (fd-backed and message DMA)`, async () => {
  await using v = await startVfud({ imageSize: 16 << 20 });
  const acked: number[] = [];
  let fdsWarm = 0;
  /** RSS after each kill. */
  const rssAfter: number[] = [];
  for (let i = 0; i < KILLS; i++) {
    const mode = i % 2 === 0 ? "memfd" : "array";
    await waitNoSession(v);
    const r = await killMidIo(v.socketPath, mode, i * SPAN, 1 + (i % 7) * 3);
    assert.ok(r.acked.length > 0, `run ${i} (${mode}) acknowledged nothing:\n${r.err}`);
    assert.equal(r.status.signal, "SIGKILL", `run ${i} ended on its own:\n${r.err}`);
    acked.push(...r.acked);
    assert.ok(!v.exited, `vfud died after kill ${i}:\n${v.log()}`);
    await waitNoSession(v);
    if (i % 10 === 9) {
      console.log(`kill ${i + 1}: RSS ${rssKiB(v.pid)} KiB, ${countFds(v.pid)} fds`);
    }
    rssAfter.push(rssKiB(v.pid));
    if (i === 9) {
      fdsWarm = countFds(v.pid);
    } else if (i > 9) {
      const fds = await settledFdCount(v.pid, fdsWarm);
      assert.equal(fds, fdsWarm, `fd count after kill ${i}: ${JSON.stringify(openFds(v.pid))}`);
    }
  }
  // Flat after warm-up: the median of the last 20 samples within 25 % of the median of kills
  // 31-50 (medians: one sample may catch the GC before a collection). V8's heap still grows
  // towards its steady size over the first thousands of sessions (deno task soak shows the
  // plateau and holds it to 10 %); a leak of 400 KiB per killed client fails this.
  const rssWarm = median(rssAfter.slice(30, 50));
  const rss = median(rssAfter.slice(-20));
  assert.ok(
    rss <= rssWarm * 1.25,
    `RSS ${rssWarm} KiB after warm-up, ${rss} KiB at the end (${rssAfter.join(" ")})`,
  );
  // Device state survives the killed client: the function is still up as its driver left it
  // (DRIVER_OK in device_status, virtio BAR 4 common config), the next client is served, and
  // every acknowledged write is on disk.
  {
    await using c = await connect(v);
    const status = (await c.regionRead(4, virtio.CommonCfg.DEVICE_STATUS, 1))[0];
    assert.ok(status & virtio.Status.DRIVER_OK, `device_status 0x${status.toString(16)} kept`);
  }
  await assertServesFreshClient(v);
  for (const s of acked) {
    const got = await readImage(v.image, s * 512, 1024);
    assert.deepEqual(got.subarray(0, 512), sectorPattern(s), `sector ${s} (acknowledged)`);
    assert.deepEqual(got.subarray(512), sectorPattern(s + 1), `sector ${s + 1} (acknowledged)`);
  }
  console.log(
    `fault: ${KILLS} kills, ${acked.length} acknowledged writes checked, fds ${fdsWarm}, RSS ${rssWarm} -> ${rss} KiB`,
  );
});
