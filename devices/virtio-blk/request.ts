/**
 * Execution of one virtio-blk request (virtio 1.x §5.2.6): header in the device-readable part,
 * data, and the status byte as the last device-writable byte. No framing is assumed (§2.6.4).
 * Data moves zero-copy: guest ranges are mapped and handed to the backend in one vectored call.
 *
 * @module
 */
import { type GuestMemory, isDmaPaused } from "../../dma/guest_memory.ts";
import {
  type DescChain,
  type GuestBuffer,
  readBuffers,
  readBuffersNow,
  sliceBuffers,
  totalLength,
  VirtqueueError,
  writeBuffers,
  writeBuffersNow,
} from "../virtio/mod.ts";
import { feature } from "../../spec/virtio.ts";
import type { BlockBackend } from "./backend.ts";
import type { Logger } from "@logtape/logtape";
import { tracing } from "../../sys/log.ts";
import {
  BlkFeature,
  BlkStatus,
  DWZ_FLAG_UNMAP,
  DWZ_SEGMENT_SIZE,
  HEADER_SIZE,
  ID_BYTES,
  ReqType,
  SECTOR_SIZE,
} from "../../spec/virtio_blk.ts";
import type { DwzLimits } from "./config.ts";

/** What a request needs from the device. */
export interface BlkTarget {
  readonly backend: BlockBackend;
  /** GET_ID answer, exactly {@link ID_BYTES} long, NUL padded. */
  readonly id: Uint8Array;
  readonly mem: GuestMemory;
  /** Negotiated features. */
  readonly features: bigint;
  /** Where failed requests are reported. */
  readonly log?: Logger;
  /** DISCARD limits, when the device offers it. */
  readonly discard?: DwzLimits;
  /** WRITE_ZEROES limits, when the device offers it. */
  readonly writeZeroes?: DwzLimits & { mayUnmap: boolean };
}

/** Outcome of a request: the status byte and the data bytes written to the guest. */
interface Outcome {
  status: number;
  written: number;
}

/** A request split into header and data ranges. */
interface Parsed {
  type: number;
  sector: bigint;
  /** Data the device reads (after the header). */
  out: GuestBuffer[];
  /** Data the device writes (before the status byte). */
  in: GuestBuffer[];
}

const IOERR: Outcome = { status: BlkStatus.IOERR, written: 0 };
const UNSUPP: Outcome = { status: BlkStatus.UNSUPP, written: 0 };

/** The request header, read at once from mmapped guest RAM where it can be. */
function parse(
  t: BlkTarget,
  chain: DescChain,
  inLen: number,
): Parsed | undefined | Promise<Parsed | undefined> {
  const outLen = totalLength(chain.readable);
  if (outLen < HEADER_SIZE) return undefined;
  const header = new Uint8Array(HEADER_SIZE);
  if (readBuffersNow(t.mem, chain.readable, 0, header)) return parsed(chain, inLen, header);
  return readBuffers(t.mem, chain.readable, 0, header).then(() => parsed(chain, inLen, header));
}

function parsed(chain: DescChain, inLen: number, header: Uint8Array): Parsed {
  const outLen = totalLength(chain.readable);
  const view = new DataView(header.buffer);
  return {
    type: view.getUint32(0, true),
    sector: view.getBigUint64(8, true),
    out: sliceBuffers(chain.readable, HEADER_SIZE, outLen - HEADER_SIZE),
    in: sliceBuffers(chain.writable, 0, inLen),
  };
}

/** Byte offset of a data transfer, or undefined when outside the device (§5.2.6.2). */
function dataOffset(t: BlkTarget, sector: bigint, len: number): bigint | undefined {
  if (len % SECTOR_SIZE !== 0) return undefined;
  const capacity = t.backend.size / BigInt(SECTOR_SIZE);
  const sectors = BigInt(len / SECTOR_SIZE);
  if (sector > capacity || sectors > capacity - sector) return undefined;
  return sector * BigInt(SECTOR_SIZE);
}

async function readData(t: BlkTarget, p: Parsed): Promise<Outcome> {
  const len = totalLength(p.in);
  const offset = dataOffset(t, p.sector, len);
  if (offset === undefined || p.out.length > 0) return IOERR;
  // The backend fills every byte (a short read is an error): no need to fetch the old bytes.
  await t.mem.transferv(p.in, "overwrite", async (segs, at) => {
    await t.backend.readv(offset + BigInt(at), segs);
  });
  return { status: BlkStatus.OK, written: len };
}

async function writeData(t: BlkTarget, p: Parsed): Promise<Outcome> {
  const offset = dataOffset(t, p.sector, totalLength(p.out));
  if (offset === undefined || p.in.length > 0 || t.backend.readonly) return IOERR;
  await t.mem.transferv(p.out, false, async (segs, at) => {
    await t.backend.writev(offset + BigInt(at), segs);
  });
  // Without a negotiated FLUSH the driver expects write-through behaviour (§5.2.6.2).
  if (!(t.features & feature(BlkFeature.FLUSH))) await t.backend.flush();
  return { status: BlkStatus.OK, written: 0 };
}

async function getId(t: BlkTarget, p: Parsed): Promise<Outcome> {
  const len = Math.min(totalLength(p.in), ID_BYTES);
  await writeBuffers(t.mem, p.in, 0, t.id.subarray(0, len));
  return { status: BlkStatus.OK, written: len };
}

/**
 * DISCARD and WRITE_ZEROES (§5.2.6): a list of {sector, num_sectors, flags} segments in the
 * device-readable data. Unknown flags, and unmap on a DISCARD, are UNSUPP (§5.2.6.2).
 */
async function discardOrZero(t: BlkTarget, p: Parsed, zero: boolean): Promise<Outcome> {
  const limits = zero ? t.writeZeroes : t.discard;
  const bit = zero ? BlkFeature.WRITE_ZEROES : BlkFeature.DISCARD;
  if (!limits || !(t.features & feature(bit))) return UNSUPP;
  const len = totalLength(p.out);
  if (len === 0 || len % DWZ_SEGMENT_SIZE !== 0 || p.in.length > 0) return IOERR;
  const count = len / DWZ_SEGMENT_SIZE;
  if (count > limits.maxSegments) return UNSUPP;
  if (t.backend.readonly) return IOERR;
  const bytes = new Uint8Array(len);
  await readBuffers(t.mem, p.out, 0, bytes);
  const v = new DataView(bytes.buffer);
  const capacity = t.backend.size / BigInt(SECTOR_SIZE);
  const ranges: { offset: bigint; length: bigint; unmap: boolean }[] = [];
  for (let i = 0; i < count; i++) {
    const sector = v.getBigUint64(i * DWZ_SEGMENT_SIZE, true);
    const sectors = v.getUint32(i * DWZ_SEGMENT_SIZE + 8, true);
    const flags = v.getUint32(i * DWZ_SEGMENT_SIZE + 12, true);
    if ((flags & ~DWZ_FLAG_UNMAP) !== 0 || (!zero && flags & DWZ_FLAG_UNMAP)) return UNSUPP;
    if (sectors > limits.maxSectors) return IOERR;
    if (sector > capacity || BigInt(sectors) > capacity - sector) return IOERR;
    const unmap = (flags & DWZ_FLAG_UNMAP) !== 0 && (t.writeZeroes?.mayUnmap ?? false);
    ranges.push({ offset: sector * 512n, length: BigInt(sectors) * 512n, unmap });
  }
  for (const r of ranges) {
    if (zero) await t.backend.writeZeroes!(r.offset, r.length, r.unmap);
    else await t.backend.discard!(r.offset, r.length);
  }
  return { status: BlkStatus.OK, written: 0 };
}

async function execute(t: BlkTarget, p: Parsed): Promise<Outcome> {
  switch (p.type) {
    case ReqType.IN:
      return await readData(t, p);
    case ReqType.OUT:
      return await writeData(t, p);
    case ReqType.FLUSH:
      await t.backend.flush();
      return { status: BlkStatus.OK, written: 0 };
    case ReqType.GET_ID:
      return await getId(t, p);
    case ReqType.DISCARD:
      return await discardOrZero(t, p, false);
    case ReqType.WRITE_ZEROES:
      return await discardOrZero(t, p, true);
    default:
      return { status: BlkStatus.UNSUPP, written: 0 };
  }
}

/**
 * Runs the request in `chain` and writes its status byte; resolves with the used length.
 * Throws {@link VirtqueueError} when the chain has no device-writable status byte or the status
 * byte cannot be written: the request cannot be completed and the device needs a reset. A guest
 * memory access deferred by a migration pause ({@link DmaPaused}) is passed on, not turned into
 * IOERR: the queue runs the request again later (reads and writes are idempotent).
 */
export async function handleBlkRequest(t: BlkTarget, chain: DescChain): Promise<number> {
  const inLen = totalLength(chain.writable) - 1;
  if (inLen < 0) throw new VirtqueueError("virtio-blk request without status byte");
  let outcome: Outcome;
  let parsed: Parsed | undefined;
  try {
    const p = parse(t, chain, inLen);
    parsed = p instanceof Promise ? await p : p;
    outcome = parsed ? await execute(t, parsed) : IOERR;
  } catch (err) {
    if (isDmaPaused(err)) throw err;
    // Unmapped data buffer, backend failure, client gone...: the guest sees IOERR.
    t.log?.warn("request failed with IOERR: {error}", { error: (err as Error).message });
    outcome = IOERR;
  }
  try {
    const status = new Uint8Array([outcome.status]);
    if (!writeBuffersNow(t.mem, chain.writable, inLen, status)) {
      await writeBuffers(t.mem, chain.writable, inLen, status);
    }
  } catch (err) {
    if (isDmaPaused(err)) throw err;
    throw new VirtqueueError("virtio-blk status byte not writable", { cause: err });
  }
  if (t.log && tracing(t.log)) traceRequest(t.log, chain, parsed, outcome);
  return outcome.written + 1;
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(ReqType).map(([k, v]) => [v, k]),
);
const STATUS_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(BlkStatus).map(([k, v]) => [v, k]),
);

/** One trace line per request: "request 7: IN sector 2048, 4096 bytes: OK". */
function traceRequest(log: Logger, chain: DescChain, p: Parsed | undefined, o: Outcome): void {
  log.trace("request {head}: {type} sector {sector}, {bytes} bytes: {status}", {
    head: chain.head,
    type: p ? TYPE_NAMES[p.type] ?? `type ${p.type}` : "malformed",
    sector: p?.sector ?? 0n,
    bytes: p ? totalLength(p.type === ReqType.OUT ? p.out : p.in) : 0,
    status: STATUS_NAMES[o.status] ?? o.status,
  });
}
