/**
 * Helpers for the end-to-end tests: prerequisites (a private Debian trixie root with QEMU 11.1 and
 * the guest pieces, built by setup.sh and build-guest.sh), the vfud daemon as a child process,
 * guest boots through run-guest.sh with their RESULT lines parsed, and disk images with known
 * content.
 *
 * Nothing here skips: a missing prerequisite fails the test with the reason.
 *
 * Env: VFUD_E2E_DIR (cache dir, default /var/tmp/vfud-e2e), VFUD_E2E_KEEP=1 (keep every work dir,
 * not only those of failed tests), VFUD_ACCEL (auto|kvm|tcg, read by run-guest.sh).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { isListening as listeningIn } from "../../client/proc.ts";
import { REPO_ROOT, VFUD } from "../vfud.ts";

/** tests/e2e/ (absolute path, with a trailing slash). */
export const E2E_HERE = decodeURIComponent(new URL(".", import.meta.url).pathname);
/** The repository root, where main.ts lives. */
export { REPO_ROOT } from "../vfud.ts";
/** The cache dir of setup.sh and build-guest.sh. */
export const E2E_DIR = Deno.env.get("VFUD_E2E_DIR") ?? "/var/tmp/vfud-e2e";
export const MiB = 1024 * 1024;

const td = new TextDecoder();

// ------------------------------------------------------------------------------------------------
// Prerequisites

let prepared: Promise<void> | undefined;

/**
 * Builds (once per process; the scripts are idempotent and fast when up to date) the trixie root
 * with QEMU 11.1 and the guest kernel/initramfs. The first run on a machine takes 1-3 minutes and
 * needs root and Debian's package mirror. Throws with the scripts' output when anything is
 * missing.
 */
export function preparePrerequisites(): Promise<void> {
  prepared ??= (async () => {
    for (const [script, timeoutS] of [["setup.sh", 2400], ["build-guest.sh", 600]] as const) {
      const t0 = performance.now();
      const out = await new Deno.Command("bash", {
        args: [E2E_HERE + script],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(timeoutS * 1000),
      }).output();
      const text = (td.decode(out.stdout) + td.decode(out.stderr)).trim();
      if (!out.success) {
        throw new Error(
          `e2e prerequisites: tests/e2e/${script} failed (exit ${out.code}${
            out.signal ? `, signal ${out.signal}` : ""
          }):\n${text}`,
        );
      }
      const s = (performance.now() - t0) / 1000;
      if (s > 5) console.error(`[e2e] ${script} took ${s.toFixed(1)} s:\n${text}`);
    }
    console.error(`[e2e] ${await qemuVersionLine()}`);
  })();
  return prepared;
}

/**
 * One line naming the QEMU build the e2e tests run against (the Debian package version setup.sh
 * recorded in its stamp, and what the binary itself says), so a result can be traced to it.
 */
export async function qemuVersionLine(): Promise<string> {
  const stamp = await Deno.readTextFile(`${E2E_DIR}/root/.vfud-e2e-setup`);
  const pkg = /qemu=(\S+)/.exec(stamp.split("\n")[1] ?? "")?.[1] ?? "unknown";
  const out = await new Deno.Command("bash", {
    args: ["-c", `. '${E2E_HERE}lib.sh' && qemu_cmd && "\${QEMU_CMD[@]}" -version`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const binary = td.decode(out.stdout).split("\n")[0].trim();
  return `QEMU: qemu-system-x86 ${pkg} (${binary || "did not run"})`;
}

// ------------------------------------------------------------------------------------------------
// Work dirs

/**
 * A temporary directory for one test. `done(ok)` removes it when the test passed (unless
 * VFUD_E2E_KEEP=1) and otherwise prints where it is (logs of QEMU, the guest and vfud).
 */
export async function workDir(
  name: string,
): Promise<{ path: string; done(ok: boolean): Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: `vfud-e2e-${name}-` });
  return {
    path,
    async done(ok: boolean) {
      if (ok && Deno.env.get("VFUD_E2E_KEEP") !== "1") {
        await Deno.remove(path, { recursive: true });
      } else {
        console.error(`[e2e] ${name}: work dir kept: ${path}`);
      }
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Guest boots

export interface GuestOptions {
  /** Guest script (path relative to tests/e2e/ or absolute), e.g. "guest/blk-integrity.sh". */
  script: string;
  /** vfio-user sockets, one vfio-user-pci device each. */
  vfu?: string[];
  /**
   * QEMU in-process virtio-blk disks ("IMG" with ",readonly=on", ",direct=on", ",aio=..."):
   * harness baseline.
   */
  disks?: string[];
  /** vhost-user-blk backend sockets (e.g. {@link StorageDaemon}), one vhost-user-blk-pci each. */
  vhostUserBlk?: string[];
  /** Guest RAM size (run-guest.sh --mem-size, default 512M). */
  memSize?: string;
  /** A command prefix run-guest.sh runs under (e.g. `nsenter --net=...` for a namespace). */
  wrap?: string[];
  /** Variables exported to the guest script. */
  env?: Record<string, string | number>;
  /** Host files made available as /data/<basename> in the guest. */
  files?: string[];
  /** Guest RAM: shared memfd (DMA_MAP with fds, default) or private (DMA_READ/DMA_WRITE). */
  mem?: "shared" | "private";
  /** Hard limit of the QEMU run in seconds (default 180). */
  timeoutS?: number;
  /** Serial console log file (run-guest.sh also writes LOG.cmd, LOG.stderr, LOG.trace). */
  log?: string;
  /** QEMU trace event patterns, e.g. "vfio_user*". */
  trace?: string[];
  /** Add the fio layer to the initramfs. */
  fio?: boolean;
  qemuArgs?: string[];
}

export interface GuestRun {
  /** run-guest.sh's exit code: 0 ok, 1 guest failure, 124 timeout, 2 usage/prerequisites. */
  code: number;
  /** Every key=value of every RESULT line (a later line wins on a repeated key). */
  results: Record<string, string>;
  /** Every key=value of the HOST lines (qemu_rc, host_total_s, status, log, ...). */
  host: Record<string, string>;
  /** run-guest.sh's whole stdout (RESULT and HOST lines) and stderr. */
  stdout: string;
  stderr: string;
}

/** Splits "RESULT a=1 b=x" style lines into a map. */
export function parseKeyValues(
  lines: string[],
  into: Record<string, string> = {},
): Record<string, string> {
  for (const line of lines) {
    for (const tok of line.trim().split(/\s+/).slice(1)) {
      const eq = tok.indexOf("=");
      if (eq > 0) into[tok.slice(0, eq)] = tok.slice(eq + 1);
    }
  }
  return into;
}

/** Boots the guest with run-guest.sh and returns its parsed output (never throws on guest failure). */
export async function runGuest(o: GuestOptions): Promise<GuestRun> {
  await preparePrerequisites();
  const timeoutS = o.timeoutS ?? 180;
  const args = [
    E2E_HERE + "run-guest.sh",
    "--script",
    o.script.startsWith("/") ? o.script : E2E_HERE + o.script,
  ];
  for (const s of o.vfu ?? []) args.push("--vfu", s);
  for (const d of o.disks ?? []) args.push("--disk", d);
  for (const s of o.vhostUserBlk ?? []) args.push("--vhost-user-blk", s);
  if (o.memSize) args.push("--mem-size", o.memSize);
  for (const [k, v] of Object.entries(o.env ?? {})) args.push("--env", `${k}=${v}`);
  for (const f of o.files ?? []) args.push("--file", f);
  for (const t of o.trace ?? []) args.push("--trace", t);
  for (const a of o.qemuArgs ?? []) args.push("--qemu-arg", a);
  args.push("--mem", o.mem ?? "shared", "--timeout", String(timeoutS));
  if (o.log) args.push("--log", o.log);
  if (o.fio) args.push("--fio");
  const argv = [...(o.wrap ?? []), "bash", ...args];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // run-guest.sh bounds QEMU itself; this only guards against the script hanging
    signal: AbortSignal.timeout((timeoutS + 60) * 1000),
  }).output();
  const stdout = td.decode(out.stdout);
  const lines = stdout.split("\n");
  const hostLines = lines.filter((l) =>
    l.startsWith("HOST ") && !l.startsWith("HOST qemu_stderr:") && !l.startsWith("HOST console:")
  );
  return {
    code: out.code,
    results: parseKeyValues(lines.filter((l) => l.startsWith("RESULT "))),
    host: parseKeyValues(hostLines),
    stdout,
    stderr: td.decode(out.stderr),
  };
}

/** Throws (with the guest's output and `context`) unless the run succeeded. */
export function assertGuestOk(run: GuestRun, what: string, context = ""): void {
  if (run.code === 0 && run.results.status === "ok") return;
  throw new Error(
    `${what}: guest run failed (run-guest.sh exit ${run.code}, status=${run.results.status})\n` +
      `--- run-guest.sh stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}${context}`,
  );
}

// ------------------------------------------------------------------------------------------------
// vfud

export interface VfudOptions {
  /** Disk image of a virtio-blk device (give either this or `device`). */
  image?: string;
  readonly?: boolean;
  /** A whole `--device` spec instead (e.g. "e1000,netdev=tap,ifname=vtap0"). */
  device?: string;
  /**
   * A command prefix vfud runs under; it must exec vfud in place (same pid), e.g.
   * `["nsenter", "--net=/proc/PID/ns/net", "--"]` to run it inside a network namespace.
   */
  wrap?: string[];
  /** Extra virtio-blk device options with `image` (e.g. "direct=on"). */
  deviceOptions?: string[];
  /** Extra vfud options (e.g. --max-bounce-buffer-size=4096). */
  extraArgs?: string[];
  /** Socket path (default <dir>/vfud.sock). */
  socket?: string;
  /** Where the socket and vfud's logs go. */
  dir: string;
  /** How long to wait for the socket to listen (default 60 s: the first run fetches npm deps). */
  startTimeoutMs?: number;
}

/** vfud running as a child process, per the CLI contract `main.ts --socket-path=S --device ...`. */
export class Vfud {
  #exit: Deno.CommandStatus | undefined;
  #pipes: Promise<unknown>;

  private constructor(
    readonly child: Deno.ChildProcess,
    readonly socket: string,
    readonly args: string[],
    readonly logs: { stdout: string; stderr: string },
    pipes: Promise<unknown>,
  ) {
    this.#pipes = pipes;
    child.status.then((s) => this.#exit = s);
  }

  /** Starts vfud and waits until its socket listens. Throws (with vfud's output) if it does not. */
  static async start(o: VfudOptions): Promise<Vfud> {
    const socket = o.socket ?? `${o.dir}/vfud.sock`;
    if (socket.length > 107) throw new Error(`socket path too long for AF_UNIX: ${socket}`);
    if ((o.image === undefined) === (o.device === undefined)) {
      throw new Error("Vfud.start: give exactly one of image and device");
    }
    if (o.image?.includes(",")) throw new Error(`image path must not contain ',': ${o.image}`);
    const device = o.device ??
      `virtio-blk,file=${o.image}${o.readonly ? ",readonly=on" : ""}${
        (o.deviceOptions ?? []).map((x) => `,${x}`).join("")
      }`;
    const args = [
      ...(o.wrap ?? []),
      ...VFUD,
      `--socket-path=${socket}`,
      "--device",
      device,
      ...(o.extraArgs ?? []),
    ];
    const logs = logFiles(o.dir, "vfud");
    const { child, pipes } = await spawnLogged(args, logs);
    const v = new Vfud(child, socket, args, logs, pipes);
    const deadline = Date.now() + (o.startTimeoutMs ?? 60_000);
    try {
      while (!(await isListening(socket, child.pid))) {
        if (v.#exit) {
          await pipes;
          throw new Error(
            `vfud exited (code ${v.#exit.code}) before listening on ${socket}${await v.describe()}`,
          );
        }
        if (Date.now() > deadline) {
          throw new Error(
            `vfud did not listen on ${socket} within ${o.startTimeoutMs ?? 60_000} ms${await v
              .describe()}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } catch (e) {
      await v.kill(); // never leave a server behind
      throw e;
    }
    return v;
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Throws unless vfud is still running and listening. */
  async assertAlive(): Promise<void> {
    if (!this.running) {
      await this.#pipes;
      throw new Error(
        `vfud is not running any more (exit code ${this.#exit?.code})${await this.describe()}`,
      );
    }
    if (!(await isListening(this.socket, this.child.pid))) {
      throw new Error(`vfud runs but does not listen on ${this.socket}${await this.describe()}`);
    }
  }

  /**
   * The clean shutdown the tests require: SIGTERM, exit code 0 within `graceMs`, socket removed.
   * Throws otherwise (after SIGKILL if it did not exit).
   */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.running) this.child.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      this.child.status,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), graceMs)),
    ]).finally(() => clearTimeout(timer));
    if (!status) {
      await this.kill();
      throw new Error(`vfud did not exit within ${graceMs} ms of SIGTERM${await this.describe()}`);
    }
    await this.#pipes;
    if (status.code !== 0 || status.signal) {
      throw new Error(
        `vfud exited with code ${status.code} signal ${status.signal} on SIGTERM${await this
          .describe()}`,
      );
    }
    if (await exists(this.socket)) {
      throw new Error(
        `vfud exited but left its socket ${this.socket} behind${await this.describe()}`,
      );
    }
  }

  /** SIGKILL and reap (cleanup path; no assertions). */
  kill(): Promise<void> {
    return killAndReap(this.child, this.#pipes);
  }

  /** The command line and the tail of vfud's logs, for error messages. */
  async describe(): Promise<string> {
    const tail = async (p: string) => {
      try {
        return (await Deno.readTextFile(p)).split("\n").slice(-40).join("\n");
      } catch {
        return "(none)";
      }
    };
    return `\n--- vfud: ${this.args.join(" ")} (cwd ${REPO_ROOT}) ---\n` +
      `--- vfud stderr (tail, ${this.logs.stderr}) ---\n${await tail(this.logs.stderr)}\n` +
      `--- vfud stdout (tail, ${this.logs.stdout}) ---\n${await tail(this.logs.stdout)}`;
  }
}

/**
 * qemu-storage-daemon of the trixie root exporting an image as a vhost-user-blk device: the
 * out-of-process alternative vfud is measured against.
 */
export class StorageDaemon {
  private constructor(
    readonly child: Deno.ChildProcess,
    readonly socket: string,
    readonly pipes: Promise<unknown>,
  ) {}

  /** Starts it on `image` (O_DIRECT with `direct`) and waits until its socket listens. */
  static async start(
    o: { dir: string; image: string; direct?: boolean; aio?: string; socket?: string },
  ): Promise<StorageDaemon> {
    await preparePrerequisites();
    const socket = o.socket ?? `${o.dir}/qsd.sock`;
    const file = {
      driver: "file",
      "node-name": "file0",
      filename: o.image,
      aio: o.aio ?? "threads",
      cache: { direct: o.direct ?? false },
    };
    const args = [
      "--blockdev",
      JSON.stringify(file),
      "--blockdev",
      JSON.stringify({ driver: "raw", "node-name": "disk0", file: "file0" }),
      "--export",
      JSON.stringify({
        type: "vhost-user-blk",
        id: "exp0",
        "node-name": "disk0",
        addr: { type: "unix", path: socket },
        writable: true,
        "num-queues": 1,
      }),
    ];
    // exec'd in place of bash (the root's loader runs it: see lib.sh rootrun), so signals and
    // /proc/PID are the daemon's own
    const script = `. '${E2E_HERE}lib.sh' && exec "$E2E_ROOT/lib64/ld-linux-x86-64.so.2" ` +
      `--library-path "$E2E_ROOT/lib/x86_64-linux-gnu:$E2E_ROOT/usr/lib/x86_64-linux-gnu" ` +
      `"$E2E_ROOT/usr/bin/qemu-storage-daemon" "$@"`;
    const { child, pipes } = await spawnLogged(
      ["bash", "-c", script, "qsd", ...args],
      logFiles(o.dir, "qsd"),
    );
    const d = new StorageDaemon(child, socket, pipes);
    const deadline = Date.now() + 30_000;
    while (!(await isListening(socket))) {
      if (Date.now() > deadline) {
        await d.kill();
        throw new Error(`qemu-storage-daemon did not listen on ${socket}: see ${o.dir}/qsd.*.log`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return d;
  }

  /** The daemon's pid. */
  get pid(): number {
    return this.child.pid;
  }

  /** SIGTERM, then SIGKILL after 10 s. */
  async stop(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* gone */ }
    const t = setTimeout(() => this.kill(), 10_000);
    await this.child.status;
    clearTimeout(t);
    await this.pipes;
  }

  async kill(): Promise<void> {
    await killAndReap(this.child, this.pipes);
  }
}

/** Copies `stream` into `file` as it arrives, then closes the file. */
/** The log files of a child process `name` in `dir`. */
export function logFiles(dir: string, name: string): { stdout: string; stderr: string } {
  return { stdout: `${dir}/${name}.stdout.log`, stderr: `${dir}/${name}.stderr.log` };
}

/**
 * Spawns `argv` in the repository with stdin closed, its stdout and stderr copied to `logs` as
 * they come; `pipes` settles once both are copied (after the child exited).
 */
export async function spawnLogged(
  argv: readonly string[],
  logs: { stdout: string; stderr: string },
  env?: Record<string, string>,
): Promise<{ child: Deno.ChildProcess; pipes: Promise<unknown> }> {
  const [outF, errF] = await Promise.all([
    Deno.open(logs.stdout, { write: true, create: true, truncate: true }),
    Deno.open(logs.stderr, { write: true, create: true, truncate: true }),
  ]);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: REPO_ROOT,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    outF.close();
    errF.close();
    throw e;
  }
  return { child, pipes: Promise.all([pump(child.stdout, outF), pump(child.stderr, errF)]) };
}

/** SIGKILL (unless it exited) and reap, logs copied (cleanup path; no assertions). */
export async function killAndReap(child: Deno.ChildProcess, pipes: Promise<unknown>) {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  await child.status;
  await pipes;
}

/**
 * Copies `from` into `to` chunk by chunk and closes `to`. (Not `pipeTo(file.writable)`: Deno
 * 2.9's FsFile.writable holds small writes back until about 64 KiB or close, so a log file would
 * stay empty while the process runs.)
 */
async function pump(from: ReadableStream<Uint8Array>, to: Deno.FsFile): Promise<void> {
  try {
    for await (const chunk of from) {
      for (let n = 0; n < chunk.length;) n += await to.write(chunk.subarray(n));
    }
  } catch {
    /* the child's pipe broke: nothing more to copy */
  } finally {
    to.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * True when a UNIX socket at `path` is in the listening state. Read from /proc/net/unix (flag
 * __SO_ACCEPTCON), so the check does not connect and the server sees no extra client. (Deno only
 * lets --allow-all read /proc directly, hence `cat`.) That table is per network namespace: pass
 * the server's `pid` to read the one of its namespace (/proc/PID/net/unix).
 */
export async function isListening(path: string, pid?: number): Promise<boolean> {
  const st = await Deno.lstat(path).catch(() => undefined);
  if (!st?.isSocket) return false;
  const out = await new Deno.Command("cat", {
    args: [pid === undefined ? "/proc/net/unix" : `/proc/${pid}/net/unix`],
    stdin: "null",
    stderr: pid === undefined ? "inherit" : "null",
  })
    .output();
  if (!out.success) {
    if (pid !== undefined) return false; // the process is gone (its exit is reported elsewhere)
    throw new Error("cannot read /proc/net/unix");
  }
  return listeningIn(path, td.decode(out.stdout));
}

// ------------------------------------------------------------------------------------------------
// Data

/** Deterministic pseudo-random bytes (xorshift32 stream seeded by `seed`). */
export function prng(seed: number, length: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, length);
}

export function md5(data: Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

export async function md5File(path: string): Promise<string> {
  return md5(await Deno.readFile(path));
}

/**
 * Writes `content` as a sparse file: all-zero 64 KiB blocks become holes. Returns the number of
 * bytes actually written.
 */
export async function writeSparse(path: string, content: Uint8Array): Promise<number> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  let written = 0;
  try {
    await f.truncate(content.length);
    const B = 64 * 1024;
    for (let off = 0; off < content.length; off += B) {
      const chunk = content.subarray(off, Math.min(off + B, content.length));
      if (chunk.every((b) => b === 0)) continue;
      await f.seek(off, Deno.SeekMode.Start);
      for (let n = 0; n < chunk.length;) n += await f.write(chunk.subarray(n));
      written += chunk.length;
    }
  } finally {
    f.close();
  }
  return written;
}

/**
 * Compares `actual` with `expected` and describes the differences: the first differing offsets
 * and, for each, which of the named `ranges` contains it (or "outside every range").
 */
export function describeDiff(
  actual: Uint8Array,
  expected: Uint8Array,
  ranges: { name: string; offset: number; length: number }[] = [],
): string | undefined {
  if (actual.length !== expected.length) {
    return `length ${actual.length}, expected ${expected.length}`;
  }
  if (Buffer.compare(actual, expected) === 0) return undefined;
  const where = (off: number) =>
    ranges.find((r) => off >= r.offset && off < r.offset + r.length)?.name ??
      "outside every written range";
  const out: string[] = [];
  let diffs = 0;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] === expected[i]) continue;
    let j = i;
    while (j < actual.length && actual[j] !== expected[j]) j++;
    diffs += j - i;
    if (out.length < 10) out.push(`  [${i}, ${j}) (${j - i} bytes) in ${where(i)}`);
    i = j;
  }
  return `${diffs} bytes differ:\n${out.join("\n")}`;
}

// ------------------------------------------------------------------------------------------------
// Pattern disks (guest/blk-integrity.sh)

/** One write of the guest: a host file of data that `dd` puts at `offset` with block size `bs`. */
export interface Pattern {
  /** Host path, passed to the guest as /data/<basename>. */
  file: string;
  name: string;
  offset: number;
  /** dd block size: one write(2)/read(2) per bs. */
  bs: string;
  data: Uint8Array;
}

/** [name, offset, length, dd bs] of one pattern write. */
export type PatternSpec = [string, number, number, string];

/** An image file and what it must hold once the guest wrote every pattern. */
export interface Disk {
  path: string;
  original: Uint8Array;
  /** `original` with every pattern written at its offset. */
  expected: Uint8Array;
  patterns: Pattern[];
}

/** Writes `original` as the sparse image `dir`/disk.img and one data file per pattern. */
export async function patternDisk(
  dir: string,
  original: Uint8Array,
  layout: readonly PatternSpec[],
  seed: number,
): Promise<Disk> {
  const path = `${dir}/disk.img`;
  await writeSparse(path, original);
  const expected = original.slice();
  const patterns: Pattern[] = [];
  for (const [i, [name, offset, len, bs]] of layout.entries()) {
    const data = prng(seed * 31 + i + 1, len);
    const file = `${dir}/${name}`;
    await Deno.writeFile(file, data);
    expected.set(data, offset);
    patterns.push({ file, name, offset, bs, data });
  }
  return { path, original, expected, patterns };
}

/** The patterns as blk-integrity.sh takes them in VFUD_WRITES. */
export function writesEnv(d: Disk): string {
  return d.patterns.map((p) => `${p.name}:${p.offset}:${p.data.length}:${p.bs}:${md5(p.data)}`)
    .join(" ");
}
