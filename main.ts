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
import { DeviceHost } from "./server/host.ts";
import { DEFAULT_SESSION_OPTIONS, Server } from "./server/server.ts";
import { EventLoop } from "./sys/event_loop.ts";
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
import { ProtocolTrace } from "./util/trace.ts";
import { ServiceStatus } from "./util/status.ts";
import { probeMain } from "./tools/probe.ts";

/**
 * Hard bound of a shutdown, from the signal: past it vfud exits 1 without finishing (e.g. a
 * flush that hangs on dead storage), so it is always gone within 2 s.
 */
const SHUTDOWN_DEADLINE_MS = 1900;
/** How long in-flight requests may run (with the client still connected) after a signal. */
const DRAIN_MS = 1000;

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
  /** Removes the socket file vfud created (if it is still the same file); idempotent. */
  removeFile(): void;
}

function openSocket(source: SocketSource, server: Server, onLastClient: () => void): Listening {
  if (source.kind === "path") {
    const { path, mode, group } = source;
    claimSocketPath(path);
    const fd = listenUnix(path, { mode, group });
    const ino = lstatPath(path)?.ino;
    server.listen(fd);
    let removed = false;
    return {
      where: path,
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
  if (kind === "listening") server.listen(fd);
  else {
    server.onLastSession = onLastClient;
    server.serveConnected(fd);
  }
  const how = source.activated ? "socket-activated" : "inherited";
  let name = "";
  try {
    name = socketName(fd);
  } catch { /* unnamed is fine */ }
  return { where: `${how} ${kind} fd ${fd}${name ? ` (${name})` : ""}`, removeFile() {} };
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

async function serve(cli: ServeCommand): Promise<number> {
  await setupLogging({
    level: cli.logLevel,
    format: cli.logFormat,
    context: { device: cli.deviceType.name, socket: socketField(cli.socket) },
  });
  const log = logger();
  let trace: ProtocolTrace | undefined;
  let listening: Listening | undefined;
  let status: ServiceStatus | undefined;
  try {
    if (cli.trace !== undefined) {
      trace = new ProtocolTrace(cli.trace);
      trace.install((e) => log.error("protocol trace stopped: {error}", { error: e.message }));
    }
    const loop = new EventLoop();
    const device = cli.deviceType.create(cli.deviceOptions, { loop });
    const host = new DeviceHost(loop, device, cli.maxBounce);
    const options = { ...DEFAULT_SESSION_OPTIONS, dmaChunk: cli.dmaChunk };
    const server = new Server(loop, host, options, log);

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
      server.stopAccepting();
      listening?.removeFile();
      // In-flight requests finish while the client can still answer their DMA; then the client
      // is dropped (what is left fails) and the loop ends.
      const drained = new Promise<void>((r) => setTimeout(r, DRAIN_MS));
      Promise.race([host.quiesce(), drained]).finally(() => {
        server.stop();
        loop.stop();
      });
    };
    const signals = (["SIGTERM", "SIGINT"] as const).map((s) => [s, () => stop(s)] as const);
    for (const [s, h] of signals) Deno.addSignalListener(s, h);
    try {
      listening = openSocket(cli.socket, server, () => stop("client left"));
      const detail = device.summary ? ` (${device.summary})` : "";
      const serving = `serving ${cli.deviceType.name} on ${listening.where}${detail}`;
      log.info("serving {type} on {where}{detail}", {
        type: cli.deviceType.name,
        where: listening.where,
        detail,
      });
      status = new ServiceStatus(
        { notify: (m) => tell(m, log), requests: () => device.requests },
        serving,
      );
      server.onClient = (peer) =>
        peer === undefined ? status?.clientLeft() : status?.clientConnected(peer);
      if (cli.demo) {
        console.log(`vfud: demo disk ${cli.deviceOptions.get("file")} (1 GiB sparse).`);
        console.log(`Attach QEMU 11.1 with:\n\n${qemuCommandLine(listening.where)}\n`);
      }
      status.ready();
      await loop.run();
      server.stop();
      await host.quiesce();
      await device.flush?.();
      device.close();
    } finally {
      status?.stop();
      for (const [s, h] of signals) Deno.removeSignalListener(s, h);
      listening?.removeFile();
      clearTimeout(deadline);
    }
    log.info("stopped");
    return 0;
  } catch (e) {
    log.error("{error}", { error: (e as Error).message });
    return 1;
  } finally {
    trace?.[Symbol.dispose]();
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
export async function main(args: string[]): Promise<number> {
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
      return await serve(cli);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
