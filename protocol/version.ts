/**
 * VERSION (1): the payload codec and the server's capability negotiation
 * (spec, "VFIO_USER_VERSION"; QEMU 11.1 client behaviour in docs/protocol-notes.md).
 *
 * Payload: major u16, minor u16, then optionally UTF-8 JSON terminated by one NUL, the same
 * shape both ways. JSON: `{"capabilities": {...}}`; unknown keys are ignored (later minor
 * versions may add some). The server side of the handshake is in negotiate.ts.
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import { struct, U64_MAX } from "./wire.ts";

/** The protocol version we speak. */
export const VERSION_MAJOR = 0;
/** The highest minor version we speak. */
export const VERSION_MINOR = 0;

/** Values the spec assumes for capabilities a peer leaves out. */
export const CAP_DEFAULTS = {
  maxMsgFds: 1,
  maxDataXferSize: 1048576,
  maxDmaMaps: 65535,
  pgsizes: 4096n,
} as const;

/** Capabilities of a VERSION message; absent keys are `undefined`. */
export interface VersionCaps {
  /** max_msg_fds: fds the sender can receive in one message. */
  maxMsgFds?: number;
  /** max_data_xfer_size: largest data `count` the sender accepts. */
  maxDataXferSize?: number;
  /** max_dma_maps: DMA windows valid at once. */
  maxDmaMaps?: number;
  /** pgsizes: bitmask of supported DMA page sizes (bigint: it may use all 64 bits). */
  pgsizes?: bigint;
  /** write_multiple: REGION_WRITE_MULTI supported. */
  writeMultiple?: boolean;
  /** twin_socket: server-to-client commands on a second socket. */
  twinSocket?: { supported?: boolean; fdIndex?: number };
  /** migration: legacy dirty-page parameters QEMU still proposes. */
  migration?: { pgsize?: number; maxBitmapSize?: number };
}

/** A decoded VERSION payload. */
export interface VersionMessage {
  /** Major version (u16). */
  major: number;
  /** Minor version (u16). */
  minor: number;
  /** Capabilities; `null` when the message has no JSON part at all. */
  caps: VersionCaps | null;
}

function bad(msg: string): never {
  throw new VfioUserError(Errno.EINVAL, `VERSION: ${msg}`);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** A non-negative integer capability; exact as bigint (big values arrive as bigint). */
function uint(x: unknown, name: string): bigint {
  if (typeof x === "bigint" && x >= 0n && x <= U64_MAX) return x;
  if (typeof x === "number" && Number.isSafeInteger(x) && x >= 0) return BigInt(x);
  return bad(`malformed ${name}: ${String(x)}`);
}

/** Values past 2^53 are clamped: these caps only ever enter a min(). */
function num(x: unknown, name: string): number {
  const v = uint(x, name);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

function bool(x: unknown, name: string): boolean {
  return typeof x === "boolean" ? x : bad(`malformed ${name}: ${String(x)}`);
}

function parseCaps(c: Record<string, unknown>): VersionCaps {
  const caps: VersionCaps = {};
  if (c.max_msg_fds !== undefined) caps.maxMsgFds = num(c.max_msg_fds, "max_msg_fds");
  if (c.max_data_xfer_size !== undefined) {
    caps.maxDataXferSize = num(c.max_data_xfer_size, "max_data_xfer_size");
  }
  if (c.max_dma_maps !== undefined) caps.maxDmaMaps = num(c.max_dma_maps, "max_dma_maps");
  if (c.pgsizes !== undefined) caps.pgsizes = uint(c.pgsizes, "pgsizes");
  if (c.write_multiple !== undefined) caps.writeMultiple = bool(c.write_multiple, "write_multiple");
  if (c.twin_socket !== undefined) {
    const t = c.twin_socket;
    if (!isObject(t)) bad("malformed twin_socket");
    caps.twinSocket = {};
    if (t.supported !== undefined) caps.twinSocket.supported = bool(t.supported, "supported");
    if (t.fd_index !== undefined) caps.twinSocket.fdIndex = num(t.fd_index, "fd_index");
  }
  if (c.migration !== undefined) {
    const m = c.migration;
    if (!isObject(m)) bad("malformed migration");
    caps.migration = {};
    if (m.pgsize !== undefined) caps.migration.pgsize = num(m.pgsize, "migration.pgsize");
    if (m.max_bitmap_size !== undefined) {
      caps.migration.maxBitmapSize = num(m.max_bitmap_size, "migration.max_bitmap_size");
    }
  }
  return caps;
}

/** Integer literals beyond 2^53 are kept exact as bigint (JSON.parse source access). */
function exactIntegers(_key: string, value: unknown, ctx?: { source?: string }): unknown {
  if (typeof value === "number" && !Number.isSafeInteger(value) && ctx?.source !== undefined) {
    if (/^\d+$/.test(ctx.source)) return BigInt(ctx.source);
  }
  return value;
}

function decodeJson(bytes: Uint8Array): VersionCaps {
  if (bytes[bytes.length - 1] !== 0) bad("JSON is not NUL-terminated");
  const body = bytes.subarray(0, bytes.length - 1);
  if (body.includes(0)) bad("NUL inside the JSON");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return bad("JSON is not valid UTF-8");
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text, exactIntegers);
  } catch (e) {
    return bad(`invalid JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) return bad("JSON is not an object");
  if (doc.capabilities === undefined) return {};
  if (!isObject(doc.capabilities)) return bad("capabilities is not an object");
  return parseCaps(doc.capabilities);
}

/** Compact JSON in a fixed key order; empty capabilities give `{}`. */
function encodeJson(caps: VersionCaps): string {
  const parts: string[] = [];
  if (caps.maxMsgFds !== undefined) parts.push(`"max_msg_fds":${caps.maxMsgFds}`);
  if (caps.maxDataXferSize !== undefined) {
    parts.push(`"max_data_xfer_size":${caps.maxDataXferSize}`);
  }
  if (caps.pgsizes !== undefined) parts.push(`"pgsizes":${caps.pgsizes}`);
  if (caps.maxDmaMaps !== undefined) parts.push(`"max_dma_maps":${caps.maxDmaMaps}`);
  if (caps.migration !== undefined) {
    const m: string[] = [];
    if (caps.migration.pgsize !== undefined) m.push(`"pgsize":${caps.migration.pgsize}`);
    if (caps.migration.maxBitmapSize !== undefined) {
      m.push(`"max_bitmap_size":${caps.migration.maxBitmapSize}`);
    }
    parts.push(`"migration":{${m.join(",")}}`);
  }
  if (caps.writeMultiple !== undefined) parts.push(`"write_multiple":${caps.writeMultiple}`);
  if (caps.twinSocket !== undefined) {
    const t: string[] = [];
    if (caps.twinSocket.supported !== undefined) t.push(`"supported":${caps.twinSocket.supported}`);
    if (caps.twinSocket.fdIndex !== undefined) t.push(`"fd_index":${caps.twinSocket.fdIndex}`);
    parts.push(`"twin_socket":{${t.join(",")}}`);
  }
  return parts.length === 0 ? "{}" : `{"capabilities":{${parts.join(",")}}}`;
}

/** major u16, minor u16; then, optionally, the JSON text and a NUL. */
const HEAD = struct({ major: "u16", minor: "u16" });

function decodeVersion(payload: Uint8Array): VersionMessage {
  const { major, minor } = HEAD.decodeHead(payload, "VERSION");
  const caps = payload.length === HEAD.SIZE ? null : decodeJson(payload.subarray(HEAD.SIZE));
  return { major, minor, caps };
}

function encodeVersion(msg: VersionMessage): Uint8Array {
  if (msg.caps === null) return HEAD.encode(msg);
  const json = new TextEncoder().encode(encodeJson(msg.caps));
  const tail = new Uint8Array(json.length + 1); // the final byte stays 0: the NUL terminator
  tail.set(json);
  return HEAD.encode(msg, tail);
}

/**
 * VERSION payload codec; requests and replies share one format. Decoding checks the NUL
 * terminator, UTF-8, JSON syntax and the type of every known capability (EINVAL); it does not
 * judge the version numbers (see {@link negotiate}).
 */
export const Version = {
  /** Fixed part (major, minor). */
  SIZE: 4,
  /** Decodes a VERSION payload. */
  decode: decodeVersion,
  /** Encodes a VERSION payload (compact JSON, fixed key order, NUL-terminated). */
  encode: encodeVersion,
  /** Same as `decode`. */
  decodeRequest: decodeVersion,
  /** Same as `encode`. */
  encodeRequest: encodeVersion,
  /** Same as `decode`. */
  decodeReply: decodeVersion,
  /** Same as `encode`. */
  encodeReply: encodeVersion,
} as const;
