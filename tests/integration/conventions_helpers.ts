/**
 * Helpers of the backend-program-convention tests (conventions_*_test.ts): vfud as a child
 * process (directly, or exec'd by python3 with a socket inherited as fd 3, the way a VMM,
 * systemd or a test harness hands one over), bounded waits, and a NOTIFY_SOCKET listener.
 *
 * Deno.Command cannot pass arbitrary fds to a child, so fd inheritance goes through python3,
 * which every machine of this project has (CI included): it creates or connects the socket,
 * moves it to fd 3, sets LISTEN_PID/LISTEN_FDS when asked, and execs vfud (same pid).
 *
 * @module
 */
import { bindDatagram, recvDatagram } from "../../sys/socket.ts";
import { closeFd } from "../../sys/ffi.ts";
import { isListening } from "../../client/mod.ts";

export { isListening };

import { spawnLogged, VFUD } from "../vfud.ts";

export { MAIN_TS, REPO_ROOT, VFUD } from "../vfud.ts";

/** Sleeps `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` every 20 ms until it returns a value other than undefined, or throws on timeout. */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** True when a UNIX socket file exists at `path`. */
export function isSocket(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSocket === true;
  } catch {
    return false;
  }
}

/** A temporary directory with a small disk image, removed on dispose. */
export interface Scratch extends AsyncDisposable {
  dir: string;
  image: string;
  /** `--device` argument for the image. */
  device: string;
}

/** Creates a temporary directory with a 1 MiB sparse image. */
export async function scratch(): Promise<Scratch> {
  const dir = await Deno.makeTempDir({ prefix: "vfud-conv-" });
  const image = `${dir}/disk.img`;
  await Deno.truncate(image, 1 << 20).catch(async () => {
    await Deno.writeFile(image, new Uint8Array(0));
    await Deno.truncate(image, 1 << 20);
  });
  return {
    dir,
    image,
    device: `--device=virtio-blk,file=${image}`,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Result of a finished command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How long a one-shot vfud may run before the test fails (it should exit at once). */
export const RUN_DEADLINE_MS = 60_000;

/** Options of {@link run}. */
export interface RunOptions {
  env?: Record<string, string>;
  /** Working directory; default the repository root. */
  cwd?: string;
  /** Bound of the run; default {@link RUN_DEADLINE_MS}. */
  deadlineMs?: number;
}

/**
 * Runs vfud with `args` to completion (for CLI errors and one-shot commands). A vfud still
 * running after `deadlineMs` (one that serves when it should have refused to start) is killed
 * and the call throws with its output.
 */
export function runVfud(
  args: string[],
  env?: Record<string, string>,
  deadlineMs = RUN_DEADLINE_MS,
): Promise<RunResult> {
  return run([...VFUD, ...args], { env, deadlineMs });
}

/** Runs vfud with `args` as nobody (uid and gid 65534, no groups), with a cache of its own. */
export function runVfudAsNobody(dir: string, args: string[]): Promise<RunResult> {
  const nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
  return run([...nobody, ...VFUD, ...args], { env: { DENO_DIR: `${dir}/deno-cache`, HOME: dir } });
}

/**
 * Runs `argv` to completion and returns its exit code and output; a command still running after
 * the deadline is killed and the call throws with its output.
 */
export async function run(argv: readonly string[], o: RunOptions = {}): Promise<RunResult> {
  const deadlineMs = o.deadlineMs ?? RUN_DEADLINE_MS;
  const p = spawnLogged(argv, { env: o.env, cwd: o.cwd });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void p.stop("SIGKILL", 0);
  }, deadlineMs);
  const { code } = await p.status;
  clearTimeout(timer);
  const r = { code, stdout: p.stdout(), stderr: p.stderr() };
  if (timedOut) {
    throw new Error(`${argv.join(" ")} still ran after ${deadlineMs} ms:\n${r.stderr}`);
  }
  return r;
}

/** A running vfud. */
export interface Running extends AsyncDisposable {
  child: Deno.ChildProcess;
  /** stdout + stderr so far. */
  output(): string;
  /** Resolves with the exit code once it exited. */
  exited: Promise<number>;
  /** Sends `sig`; resolves with the exit code and the ms it took to exit (SIGKILL after 10 s). */
  signal(sig: Deno.Signal): Promise<{ code: number; ms: number }>;
}

/** How python3 hands vfud a socket as fd 3. */
export type FdMode =
  /** python binds and listens on `path`, vfud gets `--fd=3`-able fd 3. */
  | { kind: "listen"; path: string }
  /** python connects to `path` (someone listens there) and passes the connected socket. */
  | { kind: "connect"; path: string }
  /** like "listen", plus LISTEN_PID = its pid (kept by exec) and LISTEN_FDS=1. */
  | { kind: "activate"; path: string };

const PY_HELPER = `
import os, socket, sys
kind, path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
if kind == "connect":
    s.connect(path)
else:
    s.bind(path)
    s.listen(8)
if s.fileno() == 3:
    os.set_inheritable(3, True)
else:
    os.dup2(s.fileno(), 3)
    s.close()
if kind == "activate":
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_FDNAMES"] = "vfud"
os.execv(argv[0], argv)
`;

/**
 * Starts vfud with `args`; with `fd`, python3 execs it with a socket as fd 3; `wrapper` is a
 * command that execs vfud (e.g. systemd-socket-activate). Output is collected; dispose kills it
 * if it still runs.
 */
export function startVfud(
  args: string[],
  opts: { env?: Record<string, string>; fd?: FdMode; wrapper?: string[] } = {},
): Running {
  const vfud = [...(opts.wrapper ?? []), ...VFUD, ...args];
  const argv = opts.fd ? ["python3", "-c", PY_HELPER, opts.fd.kind, opts.fd.path, ...vfud] : vfud;
  const proc = spawnLogged(argv, { env: opts.env });
  const exited = proc.status.then((s) => s.code);
  return {
    child: proc.child,
    output: proc.output,
    exited,
    async signal(sig) {
      const t0 = performance.now();
      const { code } = await proc.stop(sig, 10_000);
      return { code, ms: performance.now() - t0 };
    },
    async [Symbol.asyncDispose]() {
      await proc.stop("SIGKILL", 0);
    },
  };
}

/** Waits until vfud's socket exists at `path` (or vfud exited: then throws with its output). */
export async function waitForSocket(v: Running, path: string): Promise<void> {
  let gone = false;
  v.exited.then(() => gone = true);
  await waitFor(`socket ${path}`, () => {
    if (gone) throw new Error(`vfud exited early:\n${v.output()}`);
    return isListening(path) ? true : undefined;
  });
}

/** A datagram socket standing in for systemd's NOTIFY_SOCKET. */
export class NotifyListener implements Disposable {
  readonly address: string;
  readonly #fd: number;
  readonly #buf = new Uint8Array(4096);

  /** `address`: a path, or "@name" for the abstract namespace. */
  constructor(address: string) {
    this.address = address;
    this.#fd = bindDatagram(address);
  }

  /** The next datagram's text (waits up to `timeoutMs`). */
  async next(timeoutMs = 30_000): Promise<string> {
    const n = await waitFor(`a datagram on ${this.address}`, () => {
      const n = recvDatagram(this.#fd, this.#buf);
      return n < 0 ? undefined : n;
    }, timeoutMs);
    return new TextDecoder().decode(this.#buf.subarray(0, n));
  }

  [Symbol.dispose](): void {
    closeFd(this.#fd);
  }
}
