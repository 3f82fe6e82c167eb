/**
 * Command-line parsing and checking of the vfud server (the `probe` subcommand parses its own
 * arguments in tools/probe.ts). Every option is checked here, device options included, before
 * anything is opened: a mistake is a {@link UsageError} (exit status 2, "Try 'vfud --help'").
 * The environment's contribution (socket activation, journald, group names) comes in through
 * {@link CliEnv}; nothing is opened here.
 *
 * {@link OPTIONS} is the one description of the options: the parser, `--help`, the man page
 * and the bash completion are all generated from it (util/help.ts).
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
  parseSizeText,
} from "../devices/mod.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat } from "../sys/log.ts";
import { groupId } from "../sys/ids.ts";

/** A command-line mistake: reported with a hint to --help, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The hint printed after a usage error. */
export const USAGE_HINT = "Try 'vfud --help' for more information.";

/** How the shell completes an option's value. */
export type Completion = "file" | "directory" | "group" | "device" | "none" | readonly string[];

/** One option of the server's command line. */
export interface OptionSpec {
  name: string;
  short?: string;
  /** Name of the value (`PATH`); absent for a flag. */
  arg?: string;
  /** What it does (one paragraph; rendered by --help and the man page). */
  help: string;
  /** Default value as shown to users. */
  default?: string;
  /** A one-shot command: printed output, exit 0, every other option ignored. */
  alone?: boolean;
  complete?: Completion;
}

/** Default mode of a socket file vfud creates: owner only (0660 with --socket-group). */
export const DEFAULT_SOCKET_MODE = 0o600;
/** Default mode when --socket-group is given: the group may connect. */
export const DEFAULT_GROUP_SOCKET_MODE = 0o660;

/** Every option of `vfud` (not of `vfud probe`), in the order --help lists them. */
export const OPTIONS: readonly OptionSpec[] = [
  {
    name: "socket-path",
    arg: "PATH",
    complete: "file",
    help: "Create a listening UNIX socket at PATH and serve clients on it, one at a time " +
      "(device state survives a client's reconnect). A stale socket left at PATH (nobody " +
      "accepts on it) is replaced; any other file, or a live socket, is refused. The socket " +
      "file is removed at exit.",
  },
  {
    name: "socket-mode",
    arg: "OCTAL",
    complete: ["0600", "0660", "0666"],
    default: "0600, or 0660 with --socket-group",
    help: "Mode of the socket file --socket-path creates, in force before any client can " +
      "connect.",
  },
  {
    name: "socket-group",
    arg: "GROUP",
    complete: "group",
    help: "Group (name or number) of the socket file --socket-path creates, so that a VMM " +
      "running as another user in that group can connect. vfud must be a member of GROUP " +
      "(or root).",
  },
  {
    name: "fd",
    arg: "N",
    complete: "none",
    help: "Serve an inherited socket: a listening one (clients are accepted on it) or an " +
      "already-connected one (vfud exits 0 when that client leaves). Exactly one of " +
      "--socket-path and --fd is required, unless systemd passes the socket (LISTEN_FDS).",
  },
  {
    name: "device",
    arg: "TYPE,KEY=VALUE,...",
    complete: "device",
    help: "The device to emulate (exactly one), see DEVICES. Options are separated by commas; " +
      "a comma inside a value is written twice, as in QEMU (file=/images/a,,b.img).",
  },
  {
    name: "max-bounce-buffer-size",
    arg: "BYTES",
    complete: ["4M", "16M", "64M"],
    default: "16M",
    help: "Total size of the bounce buffers used for guest memory the client shares no fd " +
      "for (message-based DMA). Requests wait in FIFO order for room; a larger one is done " +
      "in pieces. Suffixes K, M, G.",
  },
  {
    name: "dma-chunk-size",
    arg: "BYTES",
    complete: ["16K", "32K", "64K", "128K"],
    default: "128K",
    help: "Largest data payload of one DMA_READ/DMA_WRITE message (also capped by the " +
      "client's max_data_xfer_size and by the 128 KiB DMA_READ reply window).",
  },
  {
    name: "log-level",
    arg: "LEVEL",
    complete: LOG_LEVELS,
    default: "info",
    help: `${LOG_LEVELS.join(", ")}. debug adds each client's negotiation, DMA mappings, ` +
      "interrupt and queue set-up; trace adds every message and every device request.",
  },
  {
    name: "log-format",
    arg: "FORMAT",
    complete: LOG_FORMATS,
    default: "journal when stderr is the journal (JOURNAL_STREAM), else text",
    help: "text: timestamped lines on stderr; json: one JSON object per line on stderr; " +
      "journal: native journal entries with structured fields (VFUD_DEVICE, VFUD_SOCKET, " +
      "VFUD_SESSION, ...), falling back to <N>-prefixed lines on stderr.",
  },
  {
    name: "trace-protocol",
    arg: "FILE",
    complete: "file",
    help: "Write every vfio-user message, both directions, decoded as one JSON line each " +
      "(never bulk data) to FILE (created 0600), or to stderr for -.",
  },
  {
    name: "print-capabilities",
    alone: true,
    help: "Print the device types, their options, the protocol limits and the served " +
      "commands as JSON, and exit. Every other option is ignored.",
  },
  { name: "version", short: "V", alone: true, help: "Print the version and exit." },
  { name: "help", short: "h", alone: true, help: "Print this help and exit." },
];

/** Where the server gets its socket. */
export type SocketSource =
  | { kind: "path"; path: string; mode: number; group?: { gid: number; name: string } }
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
  logFormat: LogFormat;
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

/** What parsing needs from the environment. */
export interface CliEnv {
  /** fds passed by systemd socket activation (util/systemd.ts `listenFds`). */
  activated?: readonly number[];
  /** stderr is the journal: the default --log-format is "journal". */
  journal?: boolean;
  /** Resolves a group name or number (default: the system's name service). */
  groupId?: (group: string) => number | undefined;
}

/** Parses "4096", "64K", "16M", "1G" into bytes. */
export function parseSize(text: string, what: string): number {
  const n = parseSizeText(text);
  if (!(n >= 1)) throw new UsageError(`${what}: "${text}" is not a size`);
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

/** The one-shot command among `args`, if any: it wins over everything else on the line. */
function oneShot(args: readonly string[]): CliCommand | undefined {
  const has = (...names: string[]) => args.some((a) => names.includes(a));
  if (has("--help", "-h")) return { kind: "help" };
  if (has("--version", "-V")) return { kind: "version" };
  if (has("--print-capabilities")) return { kind: "capabilities" };
  return undefined;
}

type Values = Record<string, string | undefined>;

/** parseArgs over {@link OPTIONS}; every option at most once. */
function scan(args: string[]): Values {
  const options: Record<string, { type: "string"; multiple: true; short?: string }> = {};
  for (const o of OPTIONS) {
    if (o.arg) options[o.name] = { type: "string", multiple: true };
  }
  let values: Record<string, string[] | undefined>;
  try {
    ({ values } = parseArgs({ args, strict: true, allowPositionals: false, options }) as {
      values: Record<string, string[] | undefined>;
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const out: Values = {};
  for (const [name, list] of Object.entries(values)) {
    if (!list) continue;
    if (list.length > 1) {
      throw new UsageError(
        name === "device"
          ? "--device is given twice: one vfud serves exactly one device (run one vfud per device)"
          : `--${name} is given ${list.length} times`,
      );
    }
    out[name] = list[0];
  }
  return out;
}

/**
 * Parses and checks the server's arguments. `activated` are the fds systemd passed by socket
 * activation: one of them stands in for `--fd` when neither `--fd` nor `--socket-path` is
 * given. (No arguments at all, the demo, is main.ts's business.)
 */
export function parseCli(
  args: string[],
  activated: readonly number[] = [],
  env: CliEnv = {},
): CliCommand {
  const alone = oneShot(args);
  if (alone) return alone;
  const values = scan(args);

  const logLevel = (values["log-level"] ?? "info") as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new UsageError(`--log-level: "${logLevel}" (one of ${LOG_LEVELS.join(", ")})`);
  }
  const logFormat = (values["log-format"] ?? (env.journal ? "journal" : "text")) as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) {
    throw new UsageError(`--log-format: "${logFormat}" (one of ${LOG_FORMATS.join(", ")})`);
  }
  const trace = values["trace-protocol"];
  if (trace === "") throw new UsageError("--trace-protocol needs a file name or -");
  return {
    kind: "serve",
    socket: socketSource(values, env.activated ?? activated, env.groupId ?? groupId),
    ...device(values.device),
    logLevel,
    logFormat,
    maxBounce: parseSize(values["max-bounce-buffer-size"] ?? "16M", "--max-bounce-buffer-size"),
    dmaChunk: parseSize(values["dma-chunk-size"] ?? "128K", "--dma-chunk-size"),
    trace,
    demo: false,
  };
}

/** The --log-format asked for on a line that may not parse (to report its errors in it). */
export function requestedLogFormat(args: readonly string[]): LogFormat | undefined {
  let format: string | undefined;
  args.forEach((a, i) => {
    if (a.startsWith("--log-format=")) format = a.slice("--log-format=".length);
    else if (a === "--log-format") format = args[i + 1];
  });
  return LOG_FORMATS.find((f) => f === format);
}

function socketSource(
  values: Values,
  activated: readonly number[],
  resolveGroup: (group: string) => number | undefined,
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
  for (const opt of ["socket-mode", "socket-group"]) {
    if (values[opt] !== undefined && path === undefined) {
      throw new UsageError(`--${opt} applies to the socket --socket-path creates`);
    }
  }
  if (path !== undefined) {
    if (path === "") throw new UsageError("--socket-path is empty");
    const groupText = values["socket-group"];
    let group: { gid: number; name: string } | undefined;
    if (groupText !== undefined) {
      let gid: number | undefined;
      try {
        gid = groupText === "" ? undefined : resolveGroup(groupText);
      } catch (e) {
        throw new UsageError(`--socket-group: ${(e as Error).message}`);
      }
      if (gid === undefined) throw new UsageError(`--socket-group: no group "${groupText}"`);
      group = { gid, name: groupText };
    }
    const mode = values["socket-mode"] === undefined
      ? (group ? DEFAULT_GROUP_SOCKET_MODE : DEFAULT_SOCKET_MODE)
      : parseMode(values["socket-mode"], "--socket-mode");
    return group ? { kind: "path", path, mode, group } : { kind: "path", path, mode };
  }
  if (fd !== undefined) return { kind: "fd", fd, activated: activated.includes(fd) };
  return { kind: "fd", fd: activated[0], activated: true };
}

function device(spec: string | undefined) {
  if (spec === undefined) {
    throw new UsageError(
      `--device=TYPE,... is required (types: ${[...DEVICE_TYPES.keys()].join(", ")})`,
    );
  }
  try {
    const { type, options } = parseDeviceArg(spec);
    return { deviceSpec: spec, deviceType: type, deviceOptions: options };
  } catch (e) {
    throw new UsageError(`--device: ${(e as Error).message}`);
  }
}
