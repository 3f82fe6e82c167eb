/**
 * End-to-end: vfud as a host service, with QEMU 11.1's real vfio-user client and a Linux guest.
 *
 *  1. Socket activation for real: `systemd-socket-activate` owns the listening socket and execs
 *     vfud on the first connection (LISTEN_FDS/LISTEN_PID, fd 3); vfud reports READY=1 to a
 *     NOTIFY_SOCKET this test owns, a guest writes and reads back patterns (guest/blk-integrity.sh),
 *     the host compares the image byte for byte, a second client (`vfud probe`) is served on the
 *     same activated socket, and SIGTERM gives STOPPING=1, exit 0 within 2 s, and leaves the
 *     activator's socket file alone.
 *  2. SIGTERM while a guest writes numbered 4 KiB records (guest/svc-records.sh, O_DIRECT + fsync,
 *     "RESULT done=N" after each): vfud exits 0 within 2 s of the signal and removes its socket;
 *     every record the guest reported is in the image on the host, the records present form a
 *     prefix 0..M-1 (M >= reported: the ones after the last report may or may not be there) and
 *     every byte after them is untouched. The guest then hangs on its next write: QEMU is killed
 *     (bounded) and must be gone. Twice: signalled right after a reported record, and signalled
 *     while vfud is SIGSTOPped with the guest's next request waiting for it (then SIGCONT), so
 *     a guest write is certainly outstanding when vfud handles the signal.
 *  3. (Two guests one after the other against one running vfud: blk_test.ts, step (b).)
 *  4. `vfud probe` (text and --json) against a running virtio-blk and a running e1000
 *     (netdev=stream, server=on: no tap needed): ids, class, BARs/regions, IRQ counts and the
 *     capability list; the text output is printed to the test log.
 *
 * `systemd-analyze verify` of the units runs in `deno task test` (tests/integration/
 * conventions_systemd_test.ts, on the installed units, whose ExecStart names a real file).
 *
 * Prerequisites: those of lib.ts (tests/e2e/setup.sh), plus `systemd-socket-activate` on PATH
 * (Debian's `systemd` package, on every machine of this project). Nothing skips.
 */
import assert from "node:assert/strict";
import { NotifyListener } from "../integration/conventions_helpers.ts";
import { VFUD } from "../vfud.ts";
import {
  assertGuestOk,
  describeDiff,
  type Disk,
  E2E_HERE,
  isListening,
  logFiles,
  md5,
  MiB,
  patternDisk,
  type PatternSpec,
  preparePrerequisites,
  prng,
  REPO_ROOT,
  runGuest,
  spawnLogged,
  Vfud,
  workDir,
  writesEnv,
  writeSparse,
} from "./lib.ts";

const td = new TextDecoder();
const SEED = Number(Deno.env.get("VFUD_E2E_SEED") ?? Math.floor(Math.random() * 2 ** 31));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------------
// Processes

/**
 * A child process whose stdout/stderr go to files in a work dir. With `setsid` it leads its own
 * process group, so everything it started (run-guest.sh → timeout → QEMU) can be signalled at
 * once with `signalGroup`.
 */
class Proc {
  #status: Deno.CommandStatus | undefined;
  readonly status: Promise<Deno.CommandStatus>;

  private constructor(
    readonly name: string,
    readonly child: Deno.ChildProcess,
    readonly argv: string[],
    readonly logs: { stdout: string; stderr: string },
    readonly group: boolean,
    pipes: Promise<unknown>,
  ) {
    this.status = child.status.then(async (s) => {
      this.#status = s;
      await pipes;
      return s;
    });
  }

  static async spawn(
    name: string,
    argv: string[],
    dir: string,
    o: { env?: Record<string, string>; setsid?: boolean } = {},
  ): Promise<Proc> {
    const logs = logFiles(dir, name);
    // setsid(1) execs in place (a child of deno is never a process group leader), so the pid of
    // the child is the id of the new group.
    const full = o.setsid ? ["setsid", ...argv] : argv;
    const { child, pipes } = await spawnLogged(full, logs, o.env);
    return new Proc(name, child, full, logs, o.setsid === true, pipes);
  }

  get pid(): number {
    return this.child.pid;
  }

  get exited(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  signal(sig: Deno.Signal): void {
    if (this.#status) return;
    try {
      this.child.kill(sig);
    } catch { /* exited meanwhile */ }
  }

  /** Signals the whole process group (only for `setsid` processes); no error if it is empty. */
  signalGroup(sig: Deno.Signal): void {
    if (!this.group) throw new Error(`${this.name} has no process group of its own`);
    try {
      Deno.kill(-this.pid, sig);
    } catch { /* the group is empty */ }
  }

  /** The exit status, or undefined if it still runs after `ms`. */
  async waitExit(ms: number): Promise<Deno.CommandStatus | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return await Promise.race([
      this.status,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms)),
    ]).finally(() => clearTimeout(timer));
  }

  /** Cleanup: SIGKILL (the group too, if any) and reap, bounded; never throws. */
  async kill(): Promise<void> {
    if (this.group) this.signalGroup("SIGKILL");
    this.signal("SIGKILL");
    if (!(await this.waitExit(10_000))) {
      console.error(`[e2e] ${this.name} (pid ${this.pid}) survived SIGKILL for 10 s`);
    }
  }

  async describe(): Promise<string> {
    const tail = async (p: string) =>
      (await Deno.readTextFile(p).catch(() => "(none)")).split("\n").slice(-40).join("\n");
    return `\n--- ${this.name}: ${this.argv.join(" ")} (pid ${this.pid}) ---\n` +
      `--- ${this.name} stderr (tail, ${this.logs.stderr}) ---\n${await tail(this.logs.stderr)}\n` +
      `--- ${this.name} stdout (tail, ${this.logs.stdout}) ---\n${await tail(this.logs.stdout)}`;
  }
}

/** Pids of the live processes in process group `pgid` (from /proc/PID/stat). */
async function groupMembers(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${e.name}/stat`).catch(() => "");
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ')'
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (f.length > 2 && f[0] !== "Z" && Number(f[2]) === pgid) out.push(Number(e.name));
  }
  return out;
}

/** Polls `fn` every `everyMs` until it returns something other than undefined; throws after `ms`. */
async function until<T>(
  what: string,
  ms: number,
  fn: () => Promise<T | undefined>,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Waits until `socket` listens (vfud or an activator is up); throws if `p` exits first. */
async function waitListening(p: Proc, socket: string, ms = 60_000): Promise<void> {
  await until(`${socket} to listen`, ms, async () => {
    if (await isListening(socket)) return true;
    if (p.exited) {
      throw new Error(`${p.name} exited (code ${p.exited.code}) first${await p.describe()}`);
    }
    return undefined;
  }, 50);
}

/** Throws with a clear message unless `tool` is on PATH. */
async function requireTool(tool: string, hint: string): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-c", `command -v ${tool}`],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  const path = td.decode(out.stdout).trim();
  if (!out.success || !path) {
    throw new Error(`e2e prerequisite missing: ${tool} is not on PATH (${hint})`);
  }
  return path;
}

/** `deno run --allow-all main.ts probe [--json] SOCKET`, bounded. */
async function probe(socket: string, json: boolean) {
  const args = ["run", "--allow-all", "main.ts", "probe", ...(json ? ["--json"] : []), socket];
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const r = { code: out.code, stdout: td.decode(out.stdout), stderr: td.decode(out.stderr) };
  assert.equal(r.code, 0, `vfud probe ${args.slice(4).join(" ")}: exit ${r.code}\n${r.stderr}`);
  return r;
}

// ------------------------------------------------------------------------------------------------
// 1. Socket activation with systemd-socket-activate, a guest and READY=1

/** Disk size of the activation test: 32 MiB + 8 KiB (not a multiple of 1 MiB). */
const ACT_BYTES = 32 * MiB + 8192;

/** A sparse image with random blocks, and the patterns the guest writes (blk-integrity.sh). */
function activationDisk(dir: string, seed: number): Promise<Disk> {
  const original = new Uint8Array(ACT_BYTES);
  for (let off = 0; off < ACT_BYTES; off += MiB) {
    original.set(prng(seed + off, Math.min(64 * 1024, ACT_BYTES - off)), off);
  }
  const layout: PatternSpec[] = [
    ["a0-2m-bs1m", MiB + 4096, 2 * MiB, "1M"],
    ["a1-64k-first", 0, 64 * 1024, "4K"],
    ["a2-512-sector", 9 * MiB + 512, 512, "512"],
    ["a3-1m-last", ACT_BYTES - MiB, MiB, "256K"], // ends at the last sector
  ];
  return patternDisk(dir, original, layout, seed);
}

Deno.test("service: systemd-socket-activate starts vfud for a QEMU guest; READY=1, integrity, STOPPING=1", async () => {
  await preparePrerequisites();
  const activate = await requireTool(
    "systemd-socket-activate",
    "Debian's systemd package ships it: apt-get install systemd",
  );
  const wd = await workDir("svc-activate");
  let activator: Proc | undefined;
  let ok = false;
  try {
    using notify = new NotifyListener(`${wd.path}/notify`);
    const d = await activationDisk(wd.path, SEED);
    const socket = `${wd.path}/activated.sock`;
    // systemd-socket-activate passes on only PATH, HOME, USER, TERM and --setenv variables
    const env = ["NO_COLOR=1", `NOTIFY_SOCKET=${notify.address}`];
    const denoDir = Deno.env.get("DENO_DIR");
    if (denoDir) env.push(`DENO_DIR=${denoDir}`);
    activator = await Proc.spawn("activator", [
      activate,
      "--listen",
      socket,
      ...env.map((e) => `--setenv=${e}`),
      ...VFUD,
      `--device=virtio-blk,file=${d.path},serial=svc-activated`,
    ], wd.path);
    const a = activator;
    await waitListening(a, socket, 30_000);
    // vfud itself starts only on the first connection: nothing has told READY=1 yet
    const early = await notify.next(300).catch(() => undefined);
    assert.equal(early, undefined, `a datagram before any client connected: ${early}`);

    const readyP = notify.next(120_000);
    readyP.catch(() => {}); // awaited below
    const t0 = performance.now();
    const run = await runGuest({
      vfu: [socket],
      script: "guest/blk-integrity.sh",
      timeoutS: 240,
      files: d.patterns.map((p) => p.file),
      log: `${wd.path}/guest.log`,
      env: {
        VFUD_BLK_MODE: "write",
        VFUD_EXPECT_BYTES: ACT_BYTES,
        VFUD_WRITES: writesEnv(d),
        VFUD_EXPECT_DISK_MD5: md5(d.expected),
      },
    });
    const guestS = (performance.now() - t0) / 1000;
    assertGuestOk(run, "socket-activated vfud", await a.describe());
    const ready = await readyP;
    assert.match(
      ready,
      /^READY=1\nSTATUS=serving virtio-blk on socket-activated listening fd 3 .*serial svc-activated\); waiting for a client$/,
    );
    for (
      const [k, v] of Object.entries({ blk_found: 1, blk_driver: "virtio-pci", blk_size_ok: 1 })
    ) {
      assert.equal(run.results[k], String(v), `guest ${k}\n${run.stdout}`);
    }
    for (let i = 0; i < d.patterns.length; i++) {
      for (const k of ["write_ok", "read_ok", "read4k_ok"]) {
        assert.equal(run.results[`w${i}_${k}`], "1", `guest w${i}_${k}\n${run.stdout}`);
      }
    }
    assert.equal(run.results.flush_ok, "1", run.stdout);
    assert.equal(run.results.disk_md5_ok, "1", run.stdout);
    assert.equal(run.results.blk_integrity, "ok", run.stdout);
    assert.equal(a.exited, undefined, `vfud exited after the guest left${await a.describe()}`);
    const ranges = d.patterns.map((p) => ({
      name: p.name,
      offset: p.offset,
      length: p.data.length,
    }));
    const diff = describeDiff(await Deno.readFile(d.path), d.expected, ranges);
    assert.equal(diff, undefined, `host image after the guest (seed ${SEED}): ${diff}`);
    const activatorLog = await Deno.readTextFile(a.logs.stderr);
    assert.match(
      activatorLog,
      /Execing /,
      `systemd-socket-activate did not exec vfud:\n${activatorLog}`,
    );

    // the activated listening socket stays served: a second client after the guest left
    const p = await probe(socket, false);
    assert.match(p.stdout, /vendor 0x1af4 .*device 0x1042/);

    const tStop = performance.now();
    a.signal("SIGTERM");
    const exit = a.waitExit(2_000);
    // STATUS= updates came while QEMU and the probe were connected; STOPPING=1 ends them.
    const statuses: string[] = [];
    for (let m; (m = await notify.next(2_000)) !== "STOPPING=1";) statuses.push(m);
    assert.ok(
      statuses.some((m) => /; client pid \d+ \(/.test(m)),
      `no STATUS= naming the QEMU client: ${statuses.join(" | ")}`,
    );
    const st = await exit;
    const stopMs = performance.now() - tStop;
    if (!st) throw new Error(`vfud did not exit within 2 s of SIGTERM${await a.describe()}`);
    assert.ok(stopMs < 2_000, `vfud took ${stopMs.toFixed(0)} ms to exit`);
    assert.equal(st.code, 0, `vfud exit code on SIGTERM${await a.describe()}`);
    assert.equal(st.signal, null);
    // the socket belongs to whoever made it (the activator, standing in for systemd)
    const sst = await Deno.lstat(socket).catch(() => undefined);
    assert.ok(sst?.isSocket, "vfud removed the socket-activated socket file it does not own");
    const after = describeDiff(await Deno.readFile(d.path), d.expected, ranges);
    assert.equal(after, undefined, `host image after vfud stopped: ${after}`);
    console.log(
      `socket activation: guest run ${guestS.toFixed(1)} s (${run.host.host_total_s} s in QEMU), ` +
        `READY=1 received, STOPPING=1 + exit 0 ${stopMs.toFixed(0)} ms after SIGTERM`,
    );
    ok = true;
  } finally {
    await activator?.kill();
    await wd.done(ok);
  }
});

// ------------------------------------------------------------------------------------------------
// 2. SIGTERM while a guest writes numbered records

const REC = 4096;
/** Disk of the SIGTERM test: room for 16384 records, far more than the guest gets to write. */
const REC_DISK_BYTES = 64 * MiB;
/** Records the guest must have completed before the signal. */
const REC_BEFORE_SIGNAL = 50;

/** Record `i` exactly as guest/svc-records.sh writes it. */
function record(i: number, token: string): Uint8Array {
  let s = "";
  for (let l = 0; l < 64; l++) s += `svc-record ${i} token ${token} line ${l}`.padEnd(63) + "\n";
  const b = new TextEncoder().encode(s);
  if (b.length !== REC) throw new Error(`record ${i}: ${b.length} bytes`);
  return b;
}

/** The guest's console so far: the highest "RESULT done=N" and the other RESULT keys. */
async function consoleState(log: string) {
  const text = await Deno.readTextFile(log).catch(() => "");
  let done = 0;
  const keys: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    const m = /^RESULT done=(\d+)$/.exec(line);
    if (m) done = Math.max(done, Number(m[1]));
    else if (line.startsWith("RESULT ")) {
      for (const tok of line.split(/\s+/).slice(1)) {
        const eq = tok.indexOf("=");
        if (eq > 0) keys[tok.slice(0, eq)] = tok.slice(eq + 1);
      }
    }
  }
  return { done, keys, text };
}

/**
 * Bytes waiting in the receive queues of the connections accepted on `socket` (what the client
 * sent that the server has not read yet), from `ss -x` (iproute2).
 */
async function serverRecvQueue(socket: string): Promise<number> {
  const out = await new Deno.Command("ss", {
    args: ["-x", "-n", "-H", "state", "established"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`ss -x failed: ${td.decode(out.stderr)}`);
  let q = 0;
  for (const line of td.decode(out.stdout).split("\n")) {
    // Netid Recv-Q Send-Q Local-Address Port Peer-Address Port (state filtered, so no State)
    const f = line.trim().split(/\s+/);
    if (f.length >= 4 && f[0] === "u_str" && f[3] === socket) q += Number(f[1]);
  }
  return q;
}

/**
 * How the signal meets the guest's writes:
 *  - "running": SIGTERM right after the host saw a record reported, the guest writing on;
 *  - "pending": vfud is SIGSTOPped first, until the guest's next request waits for it (the guest
 *    makes no progress for 1 s; its kick is queued in vfud's socket), then SIGTERM + SIGCONT: a
 *    guest write is certainly outstanding when vfud handles the signal.
 */
type SignalTiming = "running" | "pending";

async function sigtermDuringWrites(timing: SignalTiming): Promise<void> {
  await preparePrerequisites();
  const wd = await workDir(`svc-sigterm-${timing}`);
  let v: Vfud | undefined;
  let guest: Proc | undefined;
  let ok = false;
  try {
    const image = `${wd.path}/disk.img`;
    await writeSparse(image, new Uint8Array(REC_DISK_BYTES)); // all holes: zeros
    const token = `t${SEED.toString(36)}${Date.now().toString(36)}`;
    v = await Vfud.start({ dir: wd.path, image });
    const server = v;
    const console_ = `${wd.path}/guest.log`;
    guest = await Proc.spawn(
      "run-guest",
      [
        "bash",
        `${E2E_HERE}run-guest.sh`,
        "--vfu",
        v.socket,
        "--script",
        `${E2E_HERE}guest/svc-records.sh`,
        "--env",
        `VFUD_REC_TOKEN=${token}`,
        "--timeout",
        "300",
        "--log",
        console_,
      ],
      wd.path,
      { setsid: true },
    );
    const g = guest;
    const failed = async (what: string) =>
      new Error(
        `${what}\n--- guest console ---\n${(await consoleState(console_)).text}${await g
          .describe()}${await server.describe()}`,
      );

    // the guest boots (3-10 s under TCG) and writes
    const before = await until(`${REC_BEFORE_SIGNAL} records`, 180_000, async () => {
      const s = await consoleState(console_);
      if (s.keys.rec_write_error_at !== undefined || g.exited) {
        throw await failed("the guest stopped writing before the signal");
      }
      return s.done >= REC_BEFORE_SIGNAL ? s : undefined;
    }, 50);
    let doneAtSignal: number;
    let queued = 0;
    if (timing === "running") {
      // signal right after a completion: the guest is busy with its next record
      doneAtSignal = (await until("one more record", 10_000, async () => {
        const s = await consoleState(console_);
        return s.done > before.done ? s : undefined;
      }, 5).catch(async () => {
        throw await failed("the guest made no progress");
      })).done;
    } else {
      server.child.kill("SIGSTOP");
      // the guest cannot complete anything while vfud is stopped: wait until it has been stuck
      // for 1 s on its next request
      let last = await consoleState(console_);
      let since = Date.now();
      await until("the guest to block on the stopped vfud", 15_000, async () => {
        const s = await consoleState(console_);
        if (s.done !== last.done) [last, since] = [s, Date.now()];
        return Date.now() - since >= 1_000 ? true : undefined;
      }).catch(async () => {
        throw await failed("the guest kept completing records while vfud was stopped");
      });
      doneAtSignal = last.done;
      // informational: the guest's next request may also have been taken by vfud already
      queued = await serverRecvQueue(server.socket).catch(() => -1);
    }

    const t0 = performance.now();
    // SIGTERM; exit 0 within 2 s and socket removed, or throws (stop() sends SIGTERM at once)
    const stopping = server.stop(2_000);
    if (timing === "pending") server.child.kill("SIGCONT");
    await stopping;
    const stopMs = performance.now() - t0;
    v = undefined;
    assert.ok(stopMs < 2_000, `vfud took ${stopMs.toFixed(0)} ms to exit`);
    const serverLog = await Deno.readTextFile(server.logs.stderr);
    assert.match(serverLog, /SIGTERM: stopping/);
    assert.match(serverLog, /stopped\s*$/);

    // The guest's next request never completes (vfud is gone); let the console settle, then
    // end the guest: run-guest.sh kills QEMU on SIGTERM; SIGKILL to the whole group after 10 s.
    let last = await consoleState(console_);
    const settleUntil = Date.now() + 15_000;
    for (let quiet = 0; quiet < 3_000 && Date.now() < settleUntil && !g.exited; quiet += 250) {
      await sleep(250);
      const s = await consoleState(console_);
      if (s.done !== last.done) quiet = 0;
      last = s;
    }
    const guestEndedByItself = g.exited !== undefined;
    g.signal("SIGTERM");
    if (!(await g.waitExit(10_000))) {
      g.signalGroup("SIGKILL");
      if (!(await g.waitExit(5_000))) throw await failed("run-guest.sh survived SIGKILL");
    }
    const left = await until("QEMU to be gone", 10_000, async () => {
      const m = await groupMembers(g.pid);
      if (m.length) g.signalGroup("SIGKILL");
      return m.length === 0 ? [] : undefined;
    }).catch(async () => await groupMembers(g.pid));
    assert.deepEqual(left, [], `processes of the guest's group still alive: ${left}`);

    const end = await consoleState(console_);
    const reported = end.done;
    const qemuErr = (await Deno.readTextFile(`${console_}.stderr`).catch(() => ""))
      .split("\n").filter((l) => l.trim()).join(" | ");
    assert.ok(reported >= doneAtSignal, "the console lost lines");
    assert.equal(
      end.keys.rec_all_done,
      undefined,
      "the guest finished every record: it was not writing at the signal",
    );

    // the image: records 0..reported-1 exactly; then maybe a few more; then untouched zeros
    const img = await Deno.readFile(image);
    assert.equal(img.length, REC_DISK_BYTES);
    const block = (i: number) => img.subarray(i * REC, (i + 1) * REC);
    for (let i = 0; i < reported; i++) {
      const diff = describeDiff(block(i), record(i, token));
      if (diff) {
        throw await failed(
          `record ${i} (reported done by the guest, ${reported} reported) is not in the image: ${diff}\n` +
            `first bytes: ${JSON.stringify(td.decode(block(i).subarray(0, 64)))}`,
        );
      }
    }
    let present = reported;
    while (
      present < REC_DISK_BYTES / REC && !describeDiff(block(present), record(present, token))
    ) {
      present++;
    }
    const rest = img.subarray(present * REC);
    const firstNonZero = rest.findIndex((b) => b !== 0);
    assert.equal(
      firstNonZero,
      -1,
      `byte ${present * REC + firstNonZero} after the last complete record ${
        present - 1
      } is not zero (a torn or stray write)`,
    );
    console.log(
      `SIGTERM (${timing}): vfud exited 0 in ${stopMs.toFixed(0)} ms, socket removed; ` +
        (timing === "pending"
          ? `vfud was stopped with ${
            queued < 0 ? "(ss failed: unknown)" : queued
          } bytes of guest requests queued on its connection; `
          : "") +
        `records reported: ${doneAtSignal} when signalled, ${reported} in all; ` +
        `${present} records in the image; guest ${
          guestEndedByItself
            ? `ended by itself (QEMU: ${qemuErr || "no message"})`
            : `hung (${
              end.keys.rec_write_error_at !== undefined ? "after a write error" : "no error seen"
            }), ` +
              "QEMU killed"
        }`,
    );
    ok = true;
  } finally {
    await guest?.kill();
    await v?.kill();
    await wd.done(ok);
  }
}

Deno.test("service: SIGTERM while a guest writes records: exit 0 within 2 s, socket gone, every reported record on disk", async () => {
  await sigtermDuringWrites("running");
});

Deno.test("service: SIGTERM with a guest write request pending (vfud SIGSTOPped until it waits): same guarantees", async () => {
  await sigtermDuringWrites("pending");
});

// ------------------------------------------------------------------------------------------------
// 4. vfud probe against a virtio-blk and an e1000

interface ProbeJson {
  version: { major: number; minor: number };
  device: { flags: string[]; numRegions: number; numIrqs: number };
  regions: { index: number; name: string; size: string; flags: string[] }[];
  irqs: { index: number; name: string; count: number; flags: string[] }[];
  config: {
    vendorId: number;
    deviceId: number;
    classCode: { base: number; sub: number; progIf: number };
    bars: { index: number; kind: string; size: string }[];
    capabilities: { offset: number; id: number; details?: Record<string, unknown> }[];
    extendedCapabilities: unknown[];
  };
}

async function probeBoth(socket: string, what: string) {
  const text = await probe(socket, false);
  console.log(`--- vfud probe ${socket} (${what}) ---\n${text.stdout.trimEnd()}\n--- end ---`);
  const json = JSON.parse((await probe(socket, true)).stdout) as ProbeJson;
  return { text: text.stdout, json };
}

/** Region sizes, IRQ counts and BAR kinds of a probe report, for compact assertions. */
function shape(j: ProbeJson) {
  const regions = j.regions.filter((r) => r.size !== "0x0").map((r) => [r.name, r.size]);
  const bars = j.config.bars.filter((b) => b.kind !== "unused")
    .map((b) => [`BAR${b.index}`, `${b.kind} ${b.size}`]);
  return {
    regions: Object.fromEntries(regions),
    irqs: Object.fromEntries(j.irqs.map((i) => [i.name, i.count])),
    bars: Object.fromEntries(bars),
  };
}

Deno.test("service: vfud probe describes a running virtio-blk (1af4:1042)", async () => {
  const wd = await workDir("svc-probe-blk");
  let v: Vfud | undefined;
  let ok = false;
  try {
    const image = `${wd.path}/disk.img`;
    await writeSparse(image, new Uint8Array(16 * MiB));
    v = await Vfud.start({ dir: wd.path, image });
    const { text, json } = await probeBoth(v.socket, "virtio-blk");
    for (
      const want of [
        /^protocol version 0\.0, server capabilities:$/m,
        /^device: flags RESET\|PCI, 9 regions, 5 IRQ indexes$/m,
        /^ {2}1 BAR1: size 4K \(0x1000\) flags READ\|WRITE$/m,
        /^ {2}4 BAR4: size 16K \(0x4000\) flags READ\|WRITE$/m,
        /^ {2}7 CONFIG: size 256 \(0x100\) flags READ\|WRITE$/m,
        /^ {2}0 INTX: count 1 flags EVENTFD/m,
        /^ {2}2 MSIX: count 2 flags EVENTFD/m,
        /vendor 0x1af4 Red Hat, Inc\. \(virtio\), device 0x1042 virtio block \(modern\)/,
        /class 0x01 0x00 0x00 \(mass storage \/ SCSI\)/,
        /\[0x40\] Vendor Specific \(0x09\) virtio=common bar=4/,
        /\[0x50\] Vendor Specific \(0x09\) virtio=isr bar=4/,
        /\[0x60\] Vendor Specific \(0x09\) virtio=device bar=4/,
        /\[0x70\] Vendor Specific \(0x09\) virtio=notify bar=4 .*notifyOffMultiplier=0x4/,
        /\[0x84\] MSI-X \(0x11\) tableSize=2 .*table=BAR1 \+ 0x0 pba=BAR1 \+ 0x800/,
      ]
    ) assert.match(text, want);

    assert.deepEqual([json.version.major, json.version.minor], [0, 0]);
    assert.deepEqual(json.device, { flags: ["RESET", "PCI"], numRegions: 9, numIrqs: 5 });
    assert.equal(json.config.vendorId, 0x1af4);
    assert.equal(json.config.deviceId, 0x1042);
    const cc = json.config.classCode;
    assert.deepEqual([cc.base, cc.sub, cc.progIf], [0x01, 0x00, 0x00]);
    assert.deepEqual(shape(json), {
      regions: { BAR1: "0x1000", BAR4: "0x4000", CONFIG: "0x100" },
      irqs: { INTX: 1, MSI: 0, MSIX: 2, ERR: 1, REQ: 1 },
      bars: { BAR1: "memory32 0x1000", BAR4: "memory32 0x4000" },
    });
    const caps = json.config.capabilities.map((c) => {
      const what = c.details?.virtio ?? c.details?.tableSize;
      return `${c.offset.toString(16)}:${c.id.toString(16)}:${what}`;
    });
    assert.deepEqual(caps, ["40:9:common", "50:9:isr", "60:9:device", "70:9:notify", "84:11:2"]);
    await v.stop(2_000); // the probe left the server as it was: clean stop, socket removed
    v = undefined;
    ok = true;
  } finally {
    await v?.kill();
    await wd.done(ok);
  }
});

Deno.test("service: vfud probe describes a running e1000 (8086:100e, netdev=stream)", async () => {
  const wd = await workDir("svc-probe-e1000");
  let p: Proc | undefined;
  let ok = false;
  try {
    const socket = `${wd.path}/vfud.sock`;
    const net = `${wd.path}/net.sock`;
    p = await Proc.spawn(
      "vfud",
      [
        ...VFUD,
        `--socket-path=${socket}`,
        "--device",
        `e1000,netdev=stream,path=${net},server=on`,
      ],
      wd.path,
      { env: { NO_COLOR: "1" } },
    );
    await waitListening(p, socket);
    const { text, json } = await probeBoth(socket, "e1000");
    for (
      const want of [
        /^protocol version 0\.0, server capabilities:$/m,
        /^device: flags RESET\|PCI, 9 regions, 5 IRQ indexes$/m,
        /^ {2}0 BAR0: size 128K \(0x20000\) flags READ\|WRITE$/m,
        /^ {2}1 BAR1: size 64 \(0x40\) flags READ\|WRITE$/m,
        /^ {2}7 CONFIG: size 256 \(0x100\) flags READ\|WRITE$/m,
        /^ {2}0 INTX: count 1 flags EVENTFD/m,
        /^ {2}2 MSIX: count 0 flags/m,
        /vendor 0x8086 Intel Corporation, device 0x100e 82540EM Gigabit Ethernet \(e1000\)/,
        /class 0x02 0x00 0x00 \(network \/ Ethernet\)/,
        /BAR0: memory32 size 128K/,
        /BAR1: io size 64/,
        /capabilities:\n {4}none/,
      ]
    ) assert.match(text, want);

    assert.deepEqual([json.version.major, json.version.minor], [0, 0]);
    assert.deepEqual(json.device, { flags: ["RESET", "PCI"], numRegions: 9, numIrqs: 5 });
    assert.equal(json.config.vendorId, 0x8086);
    assert.equal(json.config.deviceId, 0x100e);
    assert.equal(json.config.classCode.base, 0x02);
    assert.deepEqual(shape(json), {
      regions: { BAR0: "0x20000", BAR1: "0x40", CONFIG: "0x100" },
      irqs: { INTX: 1, MSI: 0, MSIX: 0, ERR: 1, REQ: 1 },
      bars: { BAR0: "memory32 0x20000", BAR1: "io 0x40" },
    });
    assert.deepEqual(json.config.capabilities, []);

    p.signal("SIGTERM");
    const st = await p.waitExit(2_000);
    assert.ok(st, `vfud (e1000) did not exit within 2 s of SIGTERM${await p.describe()}`);
    assert.equal(st.code, 0, `vfud (e1000) exit code${await p.describe()}`);
    assert.equal(await Deno.lstat(socket).catch(() => undefined), undefined, "socket left behind");
    ok = true;
  } finally {
    await p?.kill();
    await wd.done(ok);
  }
});
