/**
 * Private network namespaces for the network e2e tests, so that test traffic never reaches the
 * host's interfaces or routes.
 *
 * A namespace lives as long as a holder process: `unshare --net` runs a shell that brings up `lo`
 * and then blocks in `cat` on a pipe from the test process. Closing the pipe (or the test process
 * dying) ends the holder; the kernel removes the namespace, with every interface in it, when the
 * last process inside has exited. Programs run inside through `nsenter --net=/proc/PID/ns/net`,
 * which execs them in place (same pid, so signals reach them directly). Needs root (CAP_SYS_ADMIN)
 * and util-linux's unshare and nsenter, iproute2's ip on the host.
 *
 * @module
 */
import { E2E_HERE, killAndReap, REPO_ROOT } from "./lib.ts";

const td = new TextDecoder();

/** Runs a command to completion with a time limit; throws with its output unless it exits 0. */
export async function run(cmd: string[], timeoutMs = 10_000): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
  } catch (e) {
    throw new Error(`${cmd.join(" ")}: ${(e as Error).message}`);
  }
  const text = td.decode(out.stdout) + td.decode(out.stderr);
  if (!out.success) {
    throw new Error(
      `${cmd.join(" ")}: exit ${out.code}${out.signal ? ` (signal ${out.signal})` : ""}: ${text}`,
    );
  }
  return text;
}

/** A network namespace of this test process (see the module doc). */
export class NetNs {
  #closed = false;

  private constructor(
    readonly name: string,
    readonly holder: Deno.ChildProcess,
    readonly writer: WritableStreamDefaultWriter<Uint8Array>,
  ) {}

  /** /proc/PID/ns/net of the holder: the namespace's handle. */
  get path(): string {
    return `/proc/${this.holder.pid}/ns/net`;
  }

  /** Command prefix that runs a program inside the namespace (exec'd in place: same pid). */
  get wrap(): string[] {
    return ["nsenter", `--net=${this.path}`, "--"];
  }

  /**
   * Creates the namespace (loopback up) and checks that it is not the test process's own.
   * Throws with unshare's output when that fails (e.g. not root).
   */
  static async create(name: string, timeoutMs = 10_000): Promise<NetNs> {
    let holder: Deno.ChildProcess;
    try {
      holder = new Deno.Command("unshare", {
        args: [
          "--net",
          "--",
          "sh",
          "-c",
          // stdout and stderr reach EOF once the holder blocks in cat (or once it failed)
          "ip link set lo up || exit 1; echo ready; exec cat >/dev/null 2>&1",
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      throw new Error(`netns ${name}: cannot run unshare: ${(e as Error).message}`);
    }
    const writer = holder.stdin.getWriter();
    const ns = new NetNs(name, holder, writer);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const output = Promise.all([
        new Response(holder.stdout).text(),
        new Response(holder.stderr).text(),
      ]);
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`netns ${name}: not ready within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      const [out, err] = await Promise.race([output, timeout]);
      if (out.trim() !== "ready") {
        throw new Error(`netns ${name}: unshare --net failed (needs root): ${out}${err}`);
      }
      const [mine, theirs] = await Promise.all([
        Deno.readLink("/proc/self/ns/net"),
        Deno.readLink(ns.path),
      ]);
      if (mine === theirs) throw new Error(`netns ${name}: holder runs in our own namespace`);
    } catch (e) {
      await ns.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return ns;
  }

  /** Runs `cmd` inside the namespace to completion (bounded); returns its output. */
  exec(cmd: string[], timeoutMs = 10_000): Promise<string> {
    if (this.#closed) throw new Error(`netns ${this.name} is closed`);
    return run([...this.wrap, ...cmd], timeoutMs);
  }

  /** Ends the holder (the namespace goes away with the last process inside). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.writer.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.holder.status.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), 5_000)),
    ]).finally(() => clearTimeout(timer));
    if (!exited) {
      try {
        this.holder.kill("SIGKILL");
      } catch { /* gone meanwhile */ }
      await this.holder.status;
    }
  }
}

/**
 * A background process (e.g. a test peer) whose stdout and stderr go to a log file and are kept
 * in memory, so that a test can wait for a line and read "KEY key=value" reports.
 */
export class Background {
  #text = "";
  #exit: Deno.CommandStatus | undefined;
  #pipes: Promise<unknown>;

  private constructor(
    readonly child: Deno.ChildProcess,
    readonly cmd: string[],
    readonly log: string,
    file: Deno.FsFile,
  ) {
    const append = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) {
        this.#text += td.decode(chunk, { stream: true });
        await file.write(chunk);
      }
    };
    this.#pipes = Promise.all([append(child.stdout), append(child.stderr)])
      .finally(() => file.close());
    child.status.then((s) => this.#exit = s);
  }

  static async spawn(cmd: string[], log: string, cwd?: string): Promise<Background> {
    const file = await Deno.open(log, { write: true, create: true, truncate: true });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(cmd[0], {
        args: cmd.slice(1),
        cwd,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      file.close();
      throw new Error(`${cmd.join(" ")}: ${(e as Error).message}`);
    }
    return new Background(child, cmd, log, file);
  }

  /** Everything it printed so far. */
  get output(): string {
    return this.#text;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Waits (bounded) until its output matches `re`; throws if it exits or the time is up. */
  async waitFor(re: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!re.test(this.#text)) {
      if (!this.running) {
        await this.#pipes;
        if (re.test(this.#text)) return;
        throw new Error(
          `${this.cmd.join(" ")} exited (code ${this.#exit?.code}) before printing ${re}:\n` +
            this.#text,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `${this.cmd.join(" ")} did not print ${re} within ${timeoutMs} ms:\n${this.#text}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits (bounded) for it to exit by itself; SIGKILLs it past the limit. Returns the status. */
  async wait(timeoutMs: number): Promise<{ status: Deno.CommandStatus; timedOut: boolean }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      this.child.status,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), timeoutMs)),
    ]).finally(() => clearTimeout(timer));
    if (status) {
      await this.#pipes;
      return { status, timedOut: false };
    }
    await this.kill();
    return { status: await this.child.status, timedOut: true };
  }

  /** SIGKILL and reap (cleanup path). */
  kill(): Promise<void> {
    return killAndReap(this.child, this.#pipes);
  }
}

/** What {@link startNetPeer} serves. */
export interface NetPeerOptions {
  /** Address it listens on (inside the namespace). */
  host: string;
  /** Bytes of the guest's upload (port 5001). */
  upBytes: number;
  /** What it sends the guest (port 5002). */
  downFile: string;
  /** Its own time limit. */
  timeoutS: number;
  /** Where its output goes. */
  log: string;
}

/** Starts net_peer.ts inside `ns` and waits (bounded) until it listens. */
export async function startNetPeer(ns: NetNs, opts: NetPeerOptions): Promise<Background> {
  const peer = await Background.spawn(
    [
      ...ns.wrap,
      Deno.execPath(),
      "run",
      "--allow-net",
      "--allow-read",
      `${E2E_HERE}net_peer.ts`,
      opts.host,
      "5001",
      String(opts.upBytes),
      "5002",
      opts.downFile,
      String(opts.timeoutS),
    ],
    opts.log,
    REPO_ROOT,
  );
  try {
    await peer.waitFor(/^PEER listening=/m, 30_000);
  } catch (e) {
    await peer.kill();
    throw e;
  }
  return peer;
}
