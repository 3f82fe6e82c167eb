/**
 * `--trace-protocol`: every vfio-user message, both directions, as one JSON line: time,
 * direction, connection fd, header fields, fds attached, and the payload decoded by the
 * protocol codecs. Data payloads are never written: a data field becomes its length (and its
 * hex when it is at most 16 bytes, e.g. a register value). u64 fields are hex strings.
 *
 * @module
 */
import { setMessageTracer } from "../transport/connection.ts";
import { Command, commandName, Flags, type Header } from "../protocol/header.ts";
import { errnoName } from "../sys/errno.ts";
import { concatBytes } from "../protocol/wire.ts";
import { Version } from "../protocol/version.ts";
import { DmaMap, DmaRead, DmaUnmap, DmaWrite } from "../protocol/dma.ts";
import { DeviceGetInfo, DeviceReset } from "../protocol/device_info.ts";
import { DeviceGetRegionInfo, RegionCapId, SparseMmapCap } from "../protocol/region_info.ts";
import { DeviceGetRegionIoFds } from "../protocol/region_io_fds.ts";
import { DeviceGetIrqInfo, DeviceSetIrqs } from "../protocol/irq.ts";
import { RegionRead, RegionWrite, RegionWriteMulti } from "../protocol/region_rw.ts";
import { DeviceFeature } from "../protocol/feature.ts";
import { MigDataRead, MigDataWrite } from "../protocol/mig_data.ts";
import { toHex } from "../protocol/hex.ts";
import { check, closeFd, cstr, errno, libc, retry, SysError } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";

interface Codec {
  decodeRequest(payload: Uint8Array): unknown;
  decodeReply(payload: Uint8Array): unknown;
}

const CODECS: Record<number, Codec> = {
  [Command.VERSION]: Version,
  [Command.DMA_MAP]: DmaMap,
  [Command.DMA_UNMAP]: DmaUnmap,
  [Command.DEVICE_GET_INFO]: DeviceGetInfo,
  [Command.DEVICE_GET_REGION_INFO]: DeviceGetRegionInfo,
  [Command.DEVICE_GET_REGION_IO_FDS]: DeviceGetRegionIoFds,
  [Command.DEVICE_GET_IRQ_INFO]: DeviceGetIrqInfo,
  [Command.DEVICE_SET_IRQS]: DeviceSetIrqs,
  [Command.REGION_READ]: RegionRead,
  [Command.REGION_WRITE]: RegionWrite,
  [Command.DMA_READ]: DmaRead,
  [Command.DMA_WRITE]: DmaWrite,
  [Command.DEVICE_RESET]: DeviceReset,
  [Command.REGION_WRITE_MULTI]: RegionWriteMulti,
  [Command.DEVICE_FEATURE]: DeviceFeature,
  [Command.MIG_DATA_READ]: MigDataRead,
  [Command.MIG_DATA_WRITE]: MigDataWrite,
};

/** Largest data field whose bytes are shown (as hex); longer ones only by length. */
const SHOW_BYTES = 16;

/** Makes a decoded value JSON-safe without bulk data (see the module doc). */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === "bigint") return `0x${value.toString(16)}`;
  if (value instanceof Uint8Array) {
    return value.length <= SHOW_BYTES
      ? { bytes: value.length, hex: toHex(value) }
      : { bytes: value.length };
  }
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = jsonSafe(v);
    return out;
  }
  return value;
}

/** Region info caps decoded where known (sparse mmap areas). */
function withCaps(fields: unknown): unknown {
  const f = fields as { caps?: { id: number; version: number; data: Uint8Array }[] };
  if (!Array.isArray(f.caps)) return fields;
  return {
    ...f,
    caps: f.caps.map((c) =>
      c.id === RegionCapId.SPARSE_MMAP
        ? { id: c.id, sparseMmap: SparseMmapCap.decode(c) }
        : { id: c.id, version: c.version, data: c.data }
    ),
  };
}

/**
 * The JSON-line object of one message (without time and direction). `payload` is the bytes
 * after the header. Decoding failures are reported in `decodeError`, never thrown.
 */
export function describeMessage(
  header: Header,
  payload: Uint8Array,
  fds = 0,
): Record<string, unknown> {
  const type = header.flags & Flags.TYPE_MASK;
  const out: Record<string, unknown> = {
    id: header.id,
    cmd: commandName(header.cmd),
    type: type === Flags.TYPE_COMMAND ? "command" : type === Flags.TYPE_REPLY ? "reply" : type,
    flags: header.flags,
    size: header.size,
    fds,
  };
  if (header.flags & Flags.NO_REPLY) out.noReply = true;
  if (header.flags & Flags.ERROR) {
    out.errno = header.error;
    out.error = errnoName(header.error) ?? `errno ${header.error}`;
    return out;
  }
  const codec = CODECS[header.cmd];
  if (!codec || payload.length + 16 !== header.size) return out;
  try {
    const decoded = type === Flags.TYPE_REPLY
      ? codec.decodeReply(payload)
      : codec.decodeRequest(payload);
    if (decoded !== undefined && decoded !== null) out.fields = jsonSafe(withCaps(decoded));
  } catch (e) {
    out.decodeError = (e as Error).message;
  }
  return out;
}

/** Something a trace line can be written to synchronously (a file, or stderr). */
export interface SyncWriter {
  writeSync(p: Uint8Array): number;
}

/** A protocol trace writing JSON lines to a file or stderr; {@link install} hooks it in. */
export class ProtocolTrace implements Disposable {
  readonly #out: SyncWriter;
  readonly #file: number | undefined;
  readonly #enc = new TextEncoder();

  /** `target` is a path (created or truncated, mode 0600) or "-" for stderr. */
  constructor(target: string | SyncWriter) {
    if (typeof target !== "string") {
      this.#out = target;
    } else if (target === "-") {
      this.#out = Deno.stderr;
    } else {
      // libc, not Deno.openSync: the kernel's answer for any path (Deno refuses /proc, /dev).
      const fd = libc.open(cstr(target), C.O_WRONLY | C.O_CREAT | C.O_TRUNC | C.O_CLOEXEC, 0o600);
      if (fd < 0) throw new SysError(`--trace-protocol: open ${target}`, errno());
      this.#file = fd;
      this.#out = {
        writeSync(p) {
          return Number(check(`write ${target}`, retry(() => libc.write(fd, p, BigInt(p.length)))));
        },
      };
    }
  }

  /** Writes the line of one message. */
  record(
    dir: "recv" | "send",
    conn: number,
    header: Header,
    parts: readonly Uint8Array[],
    fds: number,
  ): void {
    const line = {
      ts: new Date().toISOString(),
      dir,
      conn,
      ...describeMessage(header, concatBytes(parts), fds),
    };
    let bytes = this.#enc.encode(JSON.stringify(line) + "\n");
    while (bytes.length) bytes = bytes.subarray(this.#out.writeSync(bytes));
  }

  /**
   * Starts tracing every connection of the process. A failing write (full disk, closed
   * stderr) ends the trace, never the connection: `onError` is told once.
   */
  install(onError: (e: Error) => void = () => {}): void {
    setMessageTracer((dir, fd, header, parts, fds) => {
      try {
        this.record(dir, fd, header, parts, fds);
      } catch (e) {
        setMessageTracer(undefined);
        onError(e as Error);
      }
    });
  }

  /** Stops tracing and closes the file. */
  [Symbol.dispose](): void {
    setMessageTracer(undefined);
    if (this.#file !== undefined) closeFd(this.#file);
  }
}
