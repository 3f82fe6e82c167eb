/**
 * How the tests run vfud: the repository root, the entry point, and the command line of
 * `deno task start` (deno.json) with main.ts made absolute, so every test runs vfud with exactly
 * the permissions a user's `deno task start` grants.
 *
 * @module
 */
import config from "../deno.json" with { type: "json" };

/** The repository root (with a trailing slash). */
export const REPO_ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

/** vfud's entry point. */
export const MAIN_TS = `${REPO_ROOT}main.ts`;

/** The command that runs vfud: `deno task start`'s, from any directory. Append vfud's arguments. */
export const VFUD: readonly string[] = [
  Deno.execPath(),
  ...config.tasks.start.split(/\s+/).slice(1).map((a) => a === "main.ts" ? MAIN_TS : a),
];

/** A child process whose output the tests keep (see {@link spawnLogged}). */
export interface LoggedChild {
  readonly child: Deno.ChildProcess;
  /** What it wrote to stdout and stderr so far, in arrival order. */
  output(): string;
  /** What it wrote to stdout so far. */
  stdout(): string;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Its exit status, once it exited and all its output was read. */
  readonly status: Promise<Deno.CommandStatus>;
  /** True once it exited. */
  readonly exited: boolean;
  /** Sends `signal` (unless it exited), SIGKILL after `killAfterMs`; resolves with the status. */
  stop(signal: Deno.Signal, killAfterMs: number): Promise<Deno.CommandStatus>;
}

/** Starts `argv` (stdin closed) and collects its stdout and stderr. */
export function spawnLogged(
  argv: readonly string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): LoggedChild {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: opts.cwd ?? REPO_ROOT,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const chunks: string[] = [];
  const streams = { stdout: [] as string[], stderr: [] as string[] };
  const sink = (own: string[]) => {
    const d = new TextDecoder();
    return new WritableStream<Uint8Array>({
      write(c) {
        const text = d.decode(c, { stream: true });
        chunks.push(text);
        own.push(text);
      },
    });
  };
  const pipes = Promise.all([
    child.stdout.pipeTo(sink(streams.stdout)),
    child.stderr.pipeTo(sink(streams.stderr)),
  ]).catch(() => {});
  let exited = false;
  const status = child.status.then(async (s) => {
    exited = true;
    await pipes;
    return s;
  });
  const kill = (signal: Deno.Signal) => {
    if (exited) return;
    try {
      child.kill(signal);
    } catch { /* exited meanwhile */ }
  };
  return {
    child,
    output: () => chunks.join(""),
    stdout: () => streams.stdout.join(""),
    stderr: () => streams.stderr.join(""),
    status,
    get exited() {
      return exited;
    },
    async stop(signal, killAfterMs) {
      kill(signal);
      const timer = setTimeout(() => kill("SIGKILL"), killAfterMs);
      try {
        return await status;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
