/**
 * Command-line parsing of the vfud server (the `probe` subcommand parses its own arguments in
 * tools/probe.ts). Pure: the environment's contribution (socket activation) comes in as an
 * argument, errors are {@link UsageError}s (exit status 2), nothing is opened here.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { LogLevel } from "@logtape/logtape";
import {
  DEVICE_TYPES,
  type DeviceOptions,
  type DeviceType,
  parseDeviceArg,
} from "../devices/mod.ts";
import { LOG_LEVELS } from "../sys/log.ts";

/** A command-line mistake: reported with a hint to --help, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Where the server gets its socket. */
export type SocketSource =
  | { kind: "path"; path: string; mode: number }
  | { kind: "fd"; fd: number; activated: boolean };

/** Everything `vfud` needs to serve a device. */
export interface ServeCommand {
  kind: "serve";
  socket: SocketSource;
  /** The `--device` argument as given. */
  deviceSpec: string;
  deviceType: DeviceType;
  deviceOptions: DeviceOptions;
  logLevel: LogLevel;
  logFormat: "text" | "json";
  maxBounce: number;
  dmaChunk: number;
  /** `--trace-protocol` target: a file path or "-" for stderr. */
  trace?: string;
  /** Started without arguments: the demo disk. */
  demo: boolean;
}

/** What the command line asks for. */
export type CliCommand =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "capabilities" }
  | ServeCommand;

/** Default mode of a socket file vfud creates: owner only. */
export const DEFAULT_SOCKET_MODE = 0o600;

/** Help text (device section generated from the device registry). */
export function usage(): string {
  const devices = [...DEVICE_TYPES.values()].map((t) =>
    `  ${t.name}: ${t.description}\n` +
    Object.entries(t.options).map(([k, o]) =>
      `      ${k}=...${o.required ? " (required)" : ""}  ${o.help}`
    ).join("\n")
  ).join("\n");
  return `vfud - vfio-user device server

Usage:
  vfud --socket-path=PATH --device=TYPE,key=value,... [options]
  vfud --fd=N --device=TYPE,key=value,... [options]
  vfud --device=TYPE,...    (started by systemd socket activation: LISTEN_FDS=1, fd 3)
  vfud probe [--json] SOCKET-PATH
  vfud --print-capabilities | --version | --help
  vfud                      (no arguments: demo disk, see below)

Options:
  --socket-path=PATH   create a listening UNIX socket at PATH and serve clients on it, one at
                       a time (device state survives reconnects). A stale socket left there is
                       replaced; any other file is refused. Removed at exit
  --socket-mode=OCTAL  mode of the socket file created by --socket-path (default 0600)
  --fd=N               serve an inherited socket: a listening one (clients are accepted on it)
                       or an already-connected one (vfud exits when that client leaves)
  --device=SPEC        the device to emulate (exactly one), see "Devices"
  --max-bounce-buffer-size=BYTES
                       total size of the bounce buffers used for guest memory the client
                       shares no fd for (message-based DMA); requests wait in FIFO order for
                       room, a larger one is done in pieces. Suffixes K, M, G. Default 16M:
                       16 requests of 1 MiB in flight (the largest request Linux builds with
                       seg_max 254), a bounded cost per device
  --dma-chunk-size=BYTES
                       largest data payload of one DMA_READ/DMA_WRITE message (also capped by
                       the client's max_data_xfer_size). Default 32K (see README)
  --log-level=LEVEL    ${LOG_LEVELS.join("|")} (default info); logs go to stderr
  --log-format=FORMAT  text|json (JSON lines) (default text)
  --trace-protocol=FILE
                       write every vfio-user message, both directions, decoded as one JSON
                       line each (never bulk data) to FILE (created 0600), or to stderr for -
  --print-capabilities print device types, their options and the protocol limits as JSON
  -V, --version        print the version
  -h, --help           this text

Devices:
${devices}

Without arguments vfud serves a virtio-blk disk backed by a sparse 1 GiB image in ./.state/
on ./.state/vfud.sock and prints the QEMU command line that attaches to it.

Signals: SIGTERM and SIGINT stop vfud cleanly: no new clients, in-flight requests finish (or
fail after 1 s), backing files are flushed, the socket file is removed, exit status 0 (1 when
a 1.9 s deadline cut that short). Under systemd (NOTIFY_SOCKET) vfud reports READY=1 and STOPPING=1.
`;
}

/** Parses "4096", "64K", "16M", "1G" into bytes. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(text.trim());
  const mul = { "": 1, K: 1024, M: 1 << 20, G: 1 << 30 }[(m?.[2] ?? "").toUpperCase()];
  const n = m ? Number(m[1]) * mul! : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${what}: "${text}" is not a size`);
  return n;
}

/** Parses an octal file mode ("600", "0600", "0o600") of at most 0777. */
export function parseMode(text: string, what: string): number {
  const m = /^(?:0o?)?([0-7]{1,4})$/i.exec(text.trim());
  const mode = m ? parseInt(m[1], 8) : NaN;
  if (!(mode >= 0 && mode <= 0o777)) {
    throw new UsageError(`${what}: "${text}" is not an octal mode of at most 0777`);
  }
  return mode;
}

function parseFd(text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`--fd: "${text}" is not a file descriptor number`);
  const fd = Number(text);
  if (fd === 1 || fd === 2) throw new UsageError(`--fd: ${fd} is stdout/stderr, not a socket`);
  if (!Number.isSafeInteger(fd) || fd > 0x7fffffff) throw new UsageError(`--fd: ${text}`);
  return fd;
}

/**
 * Parses the server's arguments. `activated` are the fds systemd passed by socket activation
 * (see util/systemd.ts `listenFds`): one of them stands in for `--fd` when neither `--fd` nor
 * `--socket-path` is given. (No arguments at all, the demo, is main.ts's business.)
 */
export function parseCli(args: string[], activated: readonly number[] = []): CliCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        "socket-path": { type: "string" },
        "socket-mode": { type: "string" },
        fd: { type: "string" },
        device: { type: "string" },
        "log-level": { type: "string", default: "info" },
        "log-format": { type: "string", default: "text" },
        "max-bounce-buffer-size": { type: "string", default: "16M" },
        "dma-chunk-size": { type: "string", default: "32K" },
        "trace-protocol": { type: "string" },
        "print-capabilities": { type: "boolean" },
        version: { type: "boolean", short: "V" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (values["print-capabilities"]) return { kind: "capabilities" };

  const logLevel = values["log-level"] as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level: "${logLevel}"`);
  const logFormat = values["log-format"];
  if (logFormat !== "text" && logFormat !== "json") {
    throw new UsageError(`--log-format: "${logFormat}" (text or json)`);
  }
  const trace = values["trace-protocol"];
  if (trace === "") throw new UsageError("--trace-protocol needs a file name or -");
  return {
    kind: "serve",
    socket: socketSource(values, activated),
    ...device(values.device),
    logLevel,
    logFormat,
    maxBounce: parseSize(values["max-bounce-buffer-size"]!, "--max-bounce-buffer-size"),
    dmaChunk: parseSize(values["dma-chunk-size"]!, "--dma-chunk-size"),
    trace,
    demo: false,
  };
}

function socketSource(
  values: { "socket-path"?: string; "socket-mode"?: string; fd?: string },
  activated: readonly number[],
): SocketSource {
  const path = values["socket-path"];
  const fd = values.fd === undefined ? undefined : parseFd(values.fd);
  if (activated.length > 1) {
    throw new UsageError(`socket activation passed ${activated.length} sockets; vfud serves one`);
  }
  const viaActivation = fd === undefined && activated.length === 1;
  const given = [path !== undefined, fd !== undefined, viaActivation].filter(Boolean).length;
  if (given > 1) {
    throw new UsageError(
      `give only one of --socket-path=PATH and --fd=N${
        activated.length ? " (systemd socket activation already passed a socket)" : ""
      }`,
    );
  }
  if (given === 0) {
    throw new UsageError("give exactly one of --socket-path=PATH and --fd=N");
  }
  if (values["socket-mode"] !== undefined && path === undefined) {
    throw new UsageError("--socket-mode applies to the socket --socket-path creates");
  }
  if (path !== undefined) {
    if (path === "") throw new UsageError("--socket-path is empty");
    const mode = values["socket-mode"] === undefined
      ? DEFAULT_SOCKET_MODE
      : parseMode(values["socket-mode"], "--socket-mode");
    return { kind: "path", path, mode };
  }
  if (fd !== undefined) return { kind: "fd", fd, activated: activated.includes(fd) };
  return { kind: "fd", fd: activated[0], activated: true };
}

function device(spec: string | undefined) {
  if (spec === undefined) throw new UsageError("--device=TYPE,... is required");
  try {
    const { type, options } = parseDeviceArg(spec);
    return { deviceSpec: spec, deviceType: type, deviceOptions: options };
  } catch (e) {
    throw new UsageError(`--device: ${(e as Error).message}`);
  }
}
