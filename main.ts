/**
 * vfud: a vfio-user device server. Emulates a PCI device in this unprivileged process for a VMM
 * (QEMU's `vfio-user-pci`) connected over a UNIX socket.
 *
 * Follows the vfio-user spec's backend program conventions: `--socket-path=PATH` or `--fd=N`,
 * never daemonizes, exits 0 on SIGTERM/SIGINT after removing the socket it created.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { DEVICE_TYPES, parseDeviceArg } from "./devices/mod.ts";
import { DeviceHost } from "./server/host.ts";
import { DEFAULT_SESSION_OPTIONS, Server } from "./server/server.ts";
import { EventLoop } from "./transport/event_loop.ts";
import { listenUnix, makeNonBlocking, removeStaleSocket, socketKind } from "./transport/socket.ts";
import { LOG_LEVELS, logger, setupLogging } from "./util/log.ts";
import type { LogLevel } from "@logtape/logtape";

const USAGE = `vfud - vfio-user device server

Usage:
  vfud --socket-path=PATH --device TYPE,key=value,... [options]
  vfud --fd=N --device TYPE,key=value,... [options]
  vfud                      (no arguments: demo disk, see below)

Options:
  --socket-path=PATH   create a listening UNIX socket at PATH and serve clients on it
                       (one at a time; device state survives reconnects); removed at exit
  --fd=N               serve an inherited socket: a listening one (clients are accepted on it)
                       or an already-connected one (vfud exits when that client leaves)
  --device SPEC        the device to emulate (exactly one), see "Devices"
  --max-bounce-buffer-size=BYTES
                       total size of the bounce buffers used for guest memory the client
                       shares no fd for (message-based DMA); requests wait in FIFO order for
                       room, a larger one is done in pieces. Suffixes K, M, G. Default 16M:
                       16 requests of 1 MiB in flight (the largest request Linux builds with
                       seg_max 254), a bounded cost per device
  --dma-chunk-size=BYTES
                       largest data payload of one DMA_READ/DMA_WRITE message (also capped by
                       the client's max_data_xfer_size). Default 32K (see README)
  --log-level=LEVEL    ${LOG_LEVELS.join("|")} (default info)
  --log-format=FORMAT  text|json (JSON lines) (default text)
  -h, --help           this text

Devices:
${
  [...DEVICE_TYPES.values()].map((t) =>
    `  ${t.name}: ${t.description}\n` +
    Object.entries(t.options).map(([k, o]) =>
      `      ${k}=...${o.required ? " (required)" : ""}  ${o.help}`
    ).join("\n")
  ).join("\n")
}

Without arguments vfud serves a virtio-blk disk backed by a sparse 1 GiB image in ./.state/
on ./.state/vfud.sock and prints the QEMU command line that attaches to it.

Signals: SIGTERM and SIGINT stop vfud cleanly (exit status 0).
`;

interface Cli {
  maxBounce: number;
  dmaChunk: number;
  socketPath?: string;
  fd?: number;
  device: string;
  logLevel: LogLevel;
  logFormat: "text" | "json";
  demo: boolean;
}

function parseCli(args: string[]): Cli | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      "socket-path": { type: "string" },
      fd: { type: "string" },
      device: { type: "string" },
      "log-level": { type: "string", default: "info" },
      "log-format": { type: "string", default: "text" },
      "max-bounce-buffer-size": { type: "string", default: "16M" },
      "dma-chunk-size": { type: "string", default: "32K" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return undefined;
  const logLevel = values["log-level"] as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new Error(`--log-level: ${logLevel}`);
  const logFormat = values["log-format"];
  if (logFormat !== "text" && logFormat !== "json") throw new Error(`--log-format: ${logFormat}`);
  const maxBounce = parseSize(values["max-bounce-buffer-size"], "--max-bounce-buffer-size");
  const dmaChunk = parseSize(values["dma-chunk-size"], "--dma-chunk-size");
  const demo = args.length === 0;
  if (demo) return { ...demoCli(), maxBounce, dmaChunk };
  if ((values["socket-path"] === undefined) === (values.fd === undefined)) {
    throw new Error("give exactly one of --socket-path=PATH and --fd=N");
  }
  if (!values.device) throw new Error("--device is required");
  let fd: number | undefined;
  if (values.fd !== undefined) {
    fd = Number(values.fd);
    if (!Number.isInteger(fd) || fd < 3) throw new Error(`--fd: "${values.fd}" is not an fd >= 3`);
  }
  return {
    maxBounce,
    dmaChunk,
    socketPath: values["socket-path"],
    fd,
    device: values.device,
    logLevel,
    logFormat,
    demo,
  };
}

/** Parses "4096", "64K", "16M", "1G" into bytes. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(text.trim());
  const mul = { "": 1, K: 1024, M: 1 << 20, G: 1 << 30 }[(m?.[2] ?? "").toUpperCase()];
  const n = m ? Number(m[1]) * mul! : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${what}: "${text}" is not a size`);
  return n;
}

function demoCli(): Omit<Cli, "maxBounce" | "dmaChunk"> {
  const dir = resolve(".state");
  Deno.mkdirSync(dir, { recursive: true });
  const img = `${dir}/disk.img`;
  try {
    Deno.statSync(img);
  } catch {
    using f = Deno.openSync(img, { create: true, write: true });
    f.truncateSync(1 << 30);
  }
  return {
    socketPath: `${dir}/vfud.sock`,
    device: `virtio-blk,file=${img}`,
    logLevel: "info",
    logFormat: "text",
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

async function main(): Promise<number> {
  let cli: Cli | undefined;
  try {
    cli = parseCli(Deno.args);
  } catch (e) {
    console.error(`vfud: ${(e as Error).message}\nTry vfud --help.`);
    return 2;
  }
  if (!cli) {
    console.log(USAGE);
    return 0;
  }
  await setupLogging(cli.logLevel, cli.logFormat);
  const log = logger();
  const { type, options } = parseDeviceArg(cli.device);
  const device = type.create(options);
  const loop = new EventLoop();
  const host = new DeviceHost(loop, device, cli.maxBounce);
  const server = new Server(
    loop,
    host,
    { ...DEFAULT_SESSION_OPTIONS, dmaChunk: cli.dmaChunk },
    log,
  );
  let createdSocket: string | undefined;
  if (cli.socketPath !== undefined) {
    removeStaleSocket(cli.socketPath);
    server.listen(listenUnix(cli.socketPath));
    createdSocket = cli.socketPath;
    log.info("serving {type} on {path}", { type: type.name, path: cli.socketPath });
  } else {
    const fd = cli.fd!;
    makeNonBlocking(fd);
    if (socketKind(fd) === "listening") server.listen(fd);
    else {
      server.serveConnected(fd);
      server.onLastSession = () => loop.stop();
    }
    log.info("serving {type} on inherited fd {fd}", { type: type.name, fd });
  }
  if (cli.demo) {
    console.log(`vfud: demo disk ${options.get("file")} (1 GiB sparse). Attach QEMU 11.1 with:\n`);
    console.log(qemuCommandLine(cli.socketPath!) + "\n");
  }
  const shutdown = (sig: string) => {
    log.info("{sig}: shutting down", { sig });
    loop.stop();
  };
  const sigs: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  const handlers = sigs.map((s) => [s, () => shutdown(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  await loop.run();
  server.stop();
  await device.quiesce();
  await device.flush?.();
  device.close();
  if (createdSocket) Deno.removeSync(createdSocket);
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  log.info("stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main());
