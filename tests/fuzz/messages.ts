/**
 * Structure-aware generation and mutation of vfio-user messages: every command of the final
 * spec (and numbers it does not define) with payloads laid out field by field, values drawn
 * towards their boundaries (region sizes, max_data_xfer_size, vector counts, u32/u64 maxima),
 * then sometimes mutated byte-wise (flips, truncation, junk appended). Headers vary too: reply
 * and error bits, NO_REPLY, wrong sizes (those end the stream: the fuzzer reconnects).
 *
 * @module
 */
import { Command, Flags, SIZE as HDR } from "../../protocol/header.ts";
import { Rng } from "./rng.ts";

/** What the generator knows of the session it fuzzes. */
export interface FuzzContext {
  /** max_data_xfer_size in force. */
  maxXfer: number;
  /** max_msg_fds in force. */
  maxFds: number;
  /** Region sizes by index (from DEVICE_GET_REGION_INFO). */
  regionSizes: number[];
  /** MSI-X vectors. */
  msixVectors: number;
  /** DMA maps believed in place (address, size). */
  maps: { iova: bigint; size: bigint }[];
}

/** Kinds of fd the fuzzer attaches (created by the runner, closed after sending). */
export type FdKind = "eventfd" | "memfd" | "memfd-small" | "pipe";

/** One generated message. */
export interface FuzzMessage {
  bytes: Uint8Array;
  fds: FdKind[];
  /** The header says a reply is due (a command without NO_REPLY, well framed). */
  wantsReply: boolean;
  /** The framing is broken on purpose: the stream is not usable after it. */
  breaksStream: boolean;
  cmd: number;
}

const COMMANDS = [
  Command.VERSION,
  Command.DMA_MAP,
  Command.DMA_MAP,
  Command.DMA_UNMAP,
  Command.DMA_UNMAP,
  Command.DEVICE_GET_INFO,
  Command.DEVICE_GET_REGION_INFO,
  Command.DEVICE_GET_REGION_INFO,
  Command.DEVICE_GET_REGION_IO_FDS,
  Command.DEVICE_GET_IRQ_INFO,
  Command.DEVICE_SET_IRQS,
  Command.DEVICE_SET_IRQS,
  Command.DEVICE_SET_IRQS,
  Command.REGION_READ,
  Command.REGION_READ,
  Command.REGION_READ,
  Command.REGION_WRITE,
  Command.REGION_WRITE,
  Command.REGION_WRITE,
  Command.REGION_WRITE_MULTI,
  Command.DMA_READ,
  Command.DMA_WRITE,
  Command.DEVICE_RESET,
  Command.DEVICE_FEATURE,
  Command.MIG_DATA_READ,
  Command.MIG_DATA_WRITE,
  0,
  14,
  19,
  0xffff,
];

class Payload {
  readonly bytes: Uint8Array;
  readonly v: DataView;
  constructor(n: number) {
    this.bytes = new Uint8Array(n);
    this.v = new DataView(this.bytes.buffer);
  }
  /** Fields past the end of a short payload are left out (short payloads are on purpose). */
  u32(off: number, x: number): this {
    if (off + 4 <= this.bytes.length) this.v.setUint32(off, x >>> 0, true);
    return this;
  }
  u64(off: number, x: bigint): this {
    if (off + 8 <= this.bytes.length) this.v.setBigUint64(off, BigInt.asUintN(64, x), true);
    return this;
  }
}

function u64Edge(r: Rng, limit: bigint): bigint {
  return r.pick([0n, 1n, limit - 1n, limit, limit + 1n, 0xffff_ffff_ffff_ffffn, r.u64(), 0x1000n]);
}

function versionJson(r: Rng, ctx: FuzzContext): string | null {
  if (r.chance(0.1)) return null;
  const caps: Record<string, unknown> = {};
  const num = (lim: number) => r.pick([0, 1, lim - 1, lim, lim + 1, 2 ** 32, 2 ** 53, -1, 1.5]);
  if (r.chance(0.7)) caps.max_msg_fds = num(16);
  if (r.chance(0.7)) caps.max_data_xfer_size = num(ctx.maxXfer);
  if (r.chance(0.5)) caps.max_dma_maps = num(65535);
  if (r.chance(0.5)) caps.pgsizes = r.pick([4096, 8192, 0, 4096 | 2 ** 21, "4096"]);
  if (r.chance(0.3)) caps.write_multiple = r.pick([true, false, 1]);
  if (r.chance(0.3)) caps.twin_socket = r.pick([{ supported: true }, { supported: 1 }, true]);
  if (r.chance(0.3)) caps.migration = { pgsize: num(4096), max_bitmap_size: num(1 << 28) };
  const doc = r.chance(0.95) ? { capabilities: caps } : r.pick([[], 3, "x", { capabilities: 7 }]);
  let text = JSON.stringify(doc);
  if (r.chance(0.05)) text = text.slice(0, r.int(text.length));
  return text;
}

function versionPayload(r: Rng, ctx: FuzzContext): Uint8Array {
  const json = versionJson(r, ctx);
  const body = json === null ? new Uint8Array(0) : new TextEncoder().encode(json);
  const nul = json !== null && r.chance(0.95) ? 1 : 0;
  const p = new Payload(4 + body.length + nul);
  p.v.setUint16(0, r.chance(0.9) ? 0 : r.u32() & 0xffff, true);
  p.v.setUint16(2, r.chance(0.9) ? 0 : r.u32() & 0xffff, true);
  p.bytes.set(body, 4);
  return p.bytes;
}

function mapRange(r: Rng, ctx: FuzzContext): { iova: bigint; size: bigint } {
  if (ctx.maps.length && r.chance(0.5)) {
    const m = r.pick(ctx.maps);
    return r.chance(0.7) ? m : { iova: m.iova + BigInt(r.int(3)) - 1n, size: m.size };
  }
  const size = r.pick([0x1000n, 0x2000n, 0n, 1n, 0x10_0000n, u64Edge(r, 0x1000n)]);
  const iova = r.pick([0n, 0x10_0000n * BigInt(r.int(64)), u64Edge(r, 0x1000n)]);
  return { iova, size };
}

function regionAccess(r: Rng, ctx: FuzzContext, write: boolean): Uint8Array {
  const region = r.chance(0.9) ? r.pick([0, 1, 2, 4, 7, 7, 4, 9, 8]) : r.edge(9, 0xffff_ffff);
  const size = ctx.regionSizes[region] ?? 0;
  const count = r.pick([1, 2, 4, 8, 3, 0, 16, 64, ctx.maxXfer, ctx.maxXfer + 1, size, r.int(256)]);
  const offset = r.pick([
    0n,
    BigInt(r.int(Math.max(size, 1))),
    BigInt(Math.max(size - count, 0)),
    BigInt(size),
    BigInt(size - 1),
    u64Edge(r, BigInt(size)),
  ]);
  const dataLen = write ? (r.chance(0.9) ? count : r.int(64)) : 0;
  const cap = Math.min(dataLen, ctx.maxXfer + 16);
  const p = new Payload(16 + cap).u64(0, offset).u32(8, region).u32(12, count);
  if (write) p.bytes.set(r.bytes(cap), 16);
  return p.bytes;
}

function setIrqs(r: Rng, ctx: FuzzContext, fds: FdKind[]): Uint8Array {
  const index = r.chance(0.9) ? r.pick([0, 2, 2, 1, 3, 4]) : r.edge(5, 0xffff_ffff);
  const vectors = index === 2 ? ctx.msixVectors : index === 0 ? 1 : index === 1 ? 0 : 1;
  const data = r.pick([1, 2, 4, 4, 3, 0, 7]);
  const action = r.pick([8, 16, 32, 32, 24, 0]);
  const start = r.edge(vectors, 0xffff_ffff);
  const count = r.chance(0.5) ? r.int(vectors + 2) : r.edge(vectors, 0xffff_ffff);
  const boolBytes = data === 2 ? Math.min(count, 64) : 0;
  if (data === 4 && r.chance(0.7)) {
    const n = Math.min(r.chance(0.8) ? Math.min(count, ctx.maxFds) : r.int(ctx.maxFds + 3), 20);
    for (let i = 0; i < n; i++) fds.push(r.chance(0.9) ? "eventfd" : r.pick(["pipe", "memfd"]));
  }
  const argsz = 20 + boolBytes;
  const p = new Payload(20 + boolBytes);
  p.u32(0, r.chance(0.9) ? argsz : r.edge(argsz, 0xffff_ffff)).u32(4, data | action);
  p.u32(8, index).u32(12, start).u32(16, count);
  p.bytes.set(r.bytes(boolBytes), 20);
  return p.bytes;
}

function writeMulti(r: Rng, ctx: FuzzContext): Uint8Array {
  const n = r.pick([0, 1, 2, 7, 8, 9, 16, 17, 64, r.int(100)]);
  const entry = 24; // offset u64, region u32, count u32, data[8]
  const p = new Payload(4 + n * entry);
  p.u32(0, r.chance(0.9) ? n : r.edge(n, 0xffff_ffff));
  for (let i = 0; i < n; i++) {
    const region = r.pick([4, 7, 0, 2, 9]);
    const size = ctx.regionSizes[region] ?? 0;
    const at = 4 + i * entry;
    p.u64(at, BigInt(r.int(size + 8))).u32(at + 8, region).u32(at + 12, r.pick([1, 2, 4, 8, 9, 0]));
    p.bytes.set(r.bytes(8), at + 16);
  }
  return p.bytes;
}

function payloadFor(r: Rng, cmd: number, ctx: FuzzContext, fds: FdKind[]): Uint8Array {
  switch (cmd) {
    case Command.VERSION:
      return versionPayload(r, ctx);
    case Command.DMA_MAP: {
      const { iova, size } = mapRange(r, ctx);
      const withFd = r.chance(0.5);
      if (withFd) fds.push(r.chance(0.8) ? "memfd" : r.pick(["memfd-small", "eventfd", "pipe"]));
      const argsz = 32;
      return new Payload(32).u32(0, r.chance(0.9) ? argsz : r.edge(argsz)).u32(
        4,
        r.chance(0.9) ? r.pick([1, 2, 3]) : r.u32(),
      ).u64(8, r.chance(0.8) ? BigInt(r.int(4) * 0x1000) : u64Edge(r, 0x10_0000n)).u64(16, iova)
        .u64(24, size).bytes;
    }
    case Command.DMA_UNMAP: {
      const { iova, size } = mapRange(r, ctx);
      const all = r.chance(0.1);
      return new Payload(24).u32(0, r.chance(0.9) ? 24 : r.edge(24)).u32(
        4,
        all ? 2 : r.chance(0.9) ? 0 : r.u32(),
      ).u64(8, all && r.chance(0.8) ? 0n : iova).u64(16, all && r.chance(0.8) ? 0n : size).bytes;
    }
    case Command.DEVICE_GET_INFO:
      return new Payload(r.pick([16, 16, 0, 8, 32])).u32(0, r.edge(16)).bytes;
    case Command.DEVICE_GET_REGION_INFO:
    case Command.DEVICE_GET_REGION_IO_FDS: {
      const n = r.pick([16, 16, 12, 0, 32]);
      const p = new Payload(n);
      if (n >= 16) {
        p.u32(0, r.pick([32, 16, 0, 15, 40, 4096, 0xffff_ffff, r.int(200)]));
        p.u32(4, r.chance(0.9) ? 0 : r.u32()).u32(8, r.edge(9, 0xffff_ffff));
      }
      return p.bytes;
    }
    case Command.DEVICE_GET_IRQ_INFO:
      return new Payload(r.pick([16, 16, 12])).u32(0, r.edge(16)).u32(8, r.edge(5)).bytes;
    case Command.DEVICE_SET_IRQS:
      return setIrqs(r, ctx, fds);
    case Command.REGION_READ:
      return regionAccess(r, ctx, false).subarray(0, 16);
    case Command.REGION_WRITE:
      return regionAccess(r, ctx, true);
    case Command.REGION_WRITE_MULTI:
      return writeMulti(r, ctx);
    case Command.DMA_READ:
    case Command.DMA_WRITE:
      return new Payload(r.pick([16, 24, 4])).u64(0, r.u64()).bytes.slice(0, 16);
    case Command.DEVICE_RESET:
      return r.chance(0.9) ? new Uint8Array(0) : r.bytes(r.int(32));
    default: {
      // DEVICE_FEATURE, MIG_DATA_*, unknown numbers: argsz-led little structures and noise.
      const n = r.pick([0, 4, 8, 16, 24, 32, 64, r.int(600)]);
      const p = new Payload(n);
      for (let off = 0; off + 4 <= n; off += 4) p.u32(off, r.pick([n, r.int(10), r.u32(), 0]));
      return p.bytes;
    }
  }
}

/** Byte-level mutations of a payload (flips, truncation, junk appended, a field set to max). */
function mutate(r: Rng, p: Uint8Array): Uint8Array {
  let out = p.slice();
  for (let k = 1 + r.int(3); k > 0; k--) {
    const op = r.int(4);
    if (op === 0 && out.length) out[r.int(out.length)] ^= 1 << r.int(8);
    else if (op === 1) out = out.slice(0, r.int(out.length + 1));
    else if (op === 2) {
      const junk = r.bytes(r.pick([1, 4, 8, 100, r.int(2000)]));
      const grown = new Uint8Array(out.length + junk.length);
      grown.set(out);
      grown.set(junk, out.length);
      out = grown;
    } else if (out.length >= 4) {
      const at = r.int(out.length - 3) & ~3;
      new DataView(out.buffer).setUint32(at, r.pick([0, 0xffff_ffff, 0x8000_0000]), true);
    }
  }
  return out;
}

/** One message with header; `id` is the message id to use. */
export function generate(r: Rng, ctx: FuzzContext, id: number): FuzzMessage {
  const cmd = r.pick(COMMANDS);
  const fds: FdKind[] = [];
  let payload = payloadFor(r, cmd, ctx, fds);
  if (r.chance(0.12)) payload = mutate(r, payload);
  if (r.chance(0.03)) fds.push(r.pick(["eventfd", "memfd", "pipe"] as FdKind[])); // wrong fds
  let flags: number = Flags.TYPE_COMMAND;
  const f = r.float();
  if (f < 0.1) flags |= Flags.NO_REPLY;
  else if (f < 0.13) flags = Flags.TYPE_REPLY | (r.chance(0.5) ? Flags.ERROR : 0);
  else if (f < 0.15) flags |= r.pick([0x2, 0x3, 0x40, 0x80, Flags.ERROR]);
  const size = HDR + payload.length;
  let headerSize = size;
  let breaksStream = false;
  if (r.chance(0.002)) {
    headerSize = r.pick([0, 1, 15, size + 1 + r.int(100), 0xffff_ffff, ctx.maxXfer * 4]);
    breaksStream = true;
  }
  const bytes = new Uint8Array(size);
  const v = new DataView(bytes.buffer);
  v.setUint16(0, id, true);
  v.setUint16(2, cmd, true);
  v.setUint32(4, headerSize >>> 0, true);
  v.setUint32(8, flags, true);
  v.setUint32(12, r.chance(0.95) ? 0 : r.u32(), true);
  bytes.set(payload, HDR);
  const isCommand = (flags & Flags.TYPE_MASK) === Flags.TYPE_COMMAND;
  return {
    bytes,
    fds,
    wantsReply: isCommand && !(flags & Flags.NO_REPLY) && !breaksStream,
    breaksStream,
    cmd,
  };
}
