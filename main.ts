/**
 * vfud: a vfio-user device server. Emulates a PCI device in this unprivileged process for a VMM
 * (QEMU's `vfio-user-pci`) connected over a UNIX socket.
 *
 * Follows the vfio-user spec's backend program conventions: `--socket-path=PATH` or `--fd=N`
 * (or systemd socket activation), never daemonizes, `--print-capabilities`, and on SIGTERM or
 * SIGINT stops accepting, lets in-flight requests finish, flushes the backing storage, removes
 * the socket it created and exits 0 (a deadline keeps it under 2 s). See README.md.
 *
 * @module
 */
import { resolve } from "node:path";
import { escapeOptionValue, parseDeviceArg } from "./devices/mod.ts";
import { SysError } from "./sys/ffi.ts";
import { Errno } from "./sys/errno.ts";
import { C } from "./sys/layout.ts";
import {
  claimSocketPath,
  listenUnix,
  makeNonBlocking,
  socketFamily,
  socketKind,
  socketName,
} from "./sys/socket.ts";
import { lstatPath, unlinkPath } from "./sys/files.ts";
import { capabilities, VFUD_VERSION } from "./util/capabilities.ts";
import {
  DEFAULT_SOCKET_MODE,
  parseCli,
  requestedLogFormat,
  type ServeCommand,
  type SocketSource,
  USAGE_HINT,
  UsageError,
} from "./util/cli.ts";
import { usage } from "./util/help.ts";
import {
  closeLogging,
  defaultLogFormat,
  logger,
  logOnce,
  setupLogging,
  stderrIsJournal,
} from "./sys/log.ts";
import { listenFds, notify } from "./util/systemd.ts";
import { ServiceStatus } from "./util/status.ts";
import { onWorkerThread, ServingThread } from "./util/serving.ts";
import { serveWorkerMain } from "./util/serve_worker.ts";
import { probeMain } from "./tools/probe.ts";

/**
 * Hard bound of a shutdown, from the signal: past it vfud exits 1 without finishing (e.g. a
 * flush that hangs on dead storage), so it is always gone within 2 s.
 */
const SHUTDOWN_DEADLINE_MS = 1900;

function demoCommand(): ServeCommand {
  const dir = resolve(".state");
  Deno.mkdirSync(dir, { recursive: true });
  const img = `${dir}/disk.img`;
  try {
    Deno.statSync(img);
  } catch {
    using f = Deno.openSync(img, { create: true, write: true });
    f.truncateSync(1 << 30);
  }
  const deviceSpec = `virtio-blk,file=${escapeOptionValue(img)}`;
  const { type, options } = parseDeviceArg(deviceSpec);
  return {
    kind: "serve",
    socket: { kind: "path", path: `${dir}/vfud.sock`, mode: DEFAULT_SOCKET_MODE },
    deviceSpec,
    deviceType: type,
    deviceOptions: options,
    logLevel: "info",
    logFormat: defaultLogFormat(),
    maxBounce: 16 << 20,
    dmaChunk: 32 << 10,
    demo: true,
  };
}

function qemuCommandLine(socketPath: string): string {
  const dev = JSON.stringify({
    driver: "vfio-user-pci",
    socket: { type: "unix", path: socketPath },
  });
  return [
    "qemu-system-x86_64 -machine q35,memory-backend=mem -m 1G",
    "  -object memory-backend-memfd,id=mem,size=1G,share=on",
    `  -device '${dev}'`,
    "  -kernel bzImage -append console=ttyS0 -nographic",
  ].join(" \\\n");
}

/** A socket being served, and how to clean up what vfud created for it. */
interface Listening {
  where: string;
  fd: number;
  mode: "listening" | "connected";
  /** Removes the socket file vfud created (if it is still the same file); idempotent. */
  removeFile(): void;
}

function openSocket(source: SocketSource): Listening {
  if (source.kind === "path") {
    const { path, mode, group } = source;
    claimSocketPath(path);
    const fd = listenUnix(path, { mode, group });
    const ino = lstatPath(path)?.ino;
    let removed = false;
    return {
      where: path,
      fd,
      mode: "listening",
      removeFile() {
        if (removed) return;
        removed = true;
        try {
          const st = lstatPath(path);
          if (st?.type === "socket" && st.ino === ino) unlinkPath(path);
        } catch { /* gone, or no longer ours to tell */ }
      },
    };
  }
  const { fd } = source;
  let kind: "listening" | "connected";
  try {
    if (socketFamily(fd) !== C.AF_UNIX) throw new Error("not an AF_UNIX socket");
    kind = socketKind(fd);
  } catch (e) {
    const why = e instanceof SysError && e.errno === Errno.ENOTSOCK
      ? "not a socket"
      : e instanceof SysError && e.errno === Errno.EBADF
      ? "Bad file descriptor (not open)"
      : (e as Error).message;
    throw new Error(`--fd=${fd}: ${why}`);
  }
  makeNonBlocking(fd);
  const how = source.activated ? "socket-activated" : "inherited";
  let name = "";
  try {
    name = socketName(fd);
  } catch { /* unnamed is fine */ }
  return {
    where: `${how} ${kind} fd ${fd}${name ? ` (${name})` : ""}`,
    fd,
    mode: kind,
    removeFile() {},
  };
}

/** The socket as the journal's VFUD_SOCKET field names it: its path, or the fd. */
function socketField(source: SocketSource): string {
  if (source.kind === "path") return source.path;
  try {
    return socketName(source.fd) || `fd ${source.fd}`;
  } catch {
    return `fd ${source.fd}`;
  }
}

/** sd_notify; false when there is no service manager (or it cannot be reached: logged once). */
function tell(state: string, log: ReturnType<typeof logger>): boolean {
  try {
    return notify(state);
  } catch (e) {
    log.warn("sd_notify {state}: {error}", { state, error: (e as Error).message });
    return false;
  }
}

/** Test seams of {@link main}. */
export interface MainOptions {
  /**
   * Module the serving Worker runs (default: this one). It must call `serveWorkerMain()` when
   * loaded on a Worker, as main.ts does.
   */
  workerEntry?: string | URL;
}

/**
 * Serving runs on a Worker (util/serving.ts): device, sessions and their event loop, blocked in
 * epoll_wait between batches. This thread keeps the signals, the shutdown deadline, sd_notify and
 * the service status, so they work whatever the load of the device.
 */
async function serve(cli: ServeCommand, opts: MainOptions): Promise<number> {
  const logConfig = {
    level: cli.logLevel,
    format: cli.logFormat,
    context: { device: cli.deviceType.name, socket: socketField(cli.socket) },
  };
  await setupLogging(logConfig);
  const log = logger();
  let listening: Listening | undefined;
  let status: ServiceStatus | undefined;
  let serving: ServingThread | undefined;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info("{why}: stopping", { why });
    status?.stop();
    tell("STOPPING=1", log);
    deadline = setTimeout(async () => {
      listening?.removeFile();
      log.error("shutdown took over {ms} ms: exiting now", { ms: SHUTDOWN_DEADLINE_MS });
      await closeLogging(50);
      Deno.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    listening?.removeFile();
    // The serving thread stops accepting, lets in-flight requests finish while the client can
    // still answer their DMA, drops the client, flushes the storage and ends.
    serving?.requestStop();
  };
  const signals = (["SIGTERM", "SIGINT"] as const).map((s) => [s, () => stop(s)] as const);
  for (const [s, h] of signals) Deno.addSignalListener(s, h);
  try {
    serving = new ServingThread(opts.workerEntry ?? import.meta.url);
    serving.onStopRequest = stop;
    const { summary } = await serving.createDevice({
      deviceSpec: cli.deviceSpec,
      maxBounce: cli.maxBounce,
      dmaChunk: cli.dmaChunk,
      log: logConfig,
      ...(cli.trace !== undefined ? { trace: cli.trace } : {}),
    });
    if (stopping) return await serving.done; // signalled while the device was being created
    listening = openSocket(cli.socket);
    const detail = summary ? ` (${summary})` : "";
    const line = `serving ${cli.deviceType.name} on ${listening.where}${detail}`;
    status = new ServiceStatus(
      { notify: (m) => tell(m, log), requests: () => serving?.requests },
      line,
    );
    serving.onClient = (peer) =>
      peer === undefined ? status?.clientLeft() : status?.clientConnected(peer);
    await serving.serve(listening.fd, listening.mode);
    log.info("serving {type} on {where}{detail}", {
      type: cli.deviceType.name,
      where: listening.where,
      detail,
    });
    if (cli.demo) {
      console.log(`vfud: demo disk ${cli.deviceOptions.get("file")} (1 GiB sparse).`);
      console.log(`Attach QEMU 11.1 with:\n\n${qemuCommandLine(listening.where)}\n`);
    }
    if (!stopping) status.ready();
    const code = await serving.done;
    if (code === 0) log.info("stopped");
    return code;
  } catch (e) {
    log.error("{error}", { error: (e as Error).message });
    return 1;
  } finally {
    status?.stop();
    for (const [s, h] of signals) Deno.removeSignalListener(s, h);
    listening?.removeFile();
    clearTimeout(deadline);
    await serving?.terminate();
    await closeLogging();
  }
}

/** Reports a usage error in the log format the line asked for (or the default): exit 2. */
async function usageError(e: UsageError, args: string[]): Promise<number> {
  const format = requestedLogFormat(args) ?? defaultLogFormat();
  if (format === "text") await logOnce("error", `${e.message}\n${USAGE_HINT}`, "text");
  else await logOnce("error", `${e.message} (${USAGE_HINT})`, format);
  return 2;
}

/** Runs vfud with `args`; resolves with the exit status. */
export async function main(args: string[], opts: MainOptions = {}): Promise<number> {
  if (args[0] === "probe") return await probeMain(args.slice(1));
  let cli;
  try {
    const activated = listenFds();
    cli = args.length === 0
      ? demoCommand()
      : parseCli(args, activated, { journal: stderrIsJournal() });
  } catch (e) {
    if (!(e instanceof UsageError)) {
      await logOnce("error", (e as Error).message, requestedLogFormat(args) ?? defaultLogFormat());
      return 1;
    }
    return await usageError(e, args);
  }
  switch (cli.kind) {
    case "help":
      console.log(usage().trimEnd());
      return 0;
    case "version":
      console.log(`vfud ${VFUD_VERSION}`);
      return 0;
    case "capabilities":
      console.log(JSON.stringify(capabilities(), null, 2));
      return 0;
    case "serve":
      return await serve(cli, opts);
  }
}

if (import.meta.main) {
  if (onWorkerThread()) await serveWorkerMain();
  else Deno.exit(await main(Deno.args));
}
