/**
 * REGION_READ (9), REGION_WRITE (10) and REGION_WRITE_MULTI (15) payloads
 * (spec, "VFIO_USER_REGION_READ", "VFIO_USER_REGION_WRITE", "VFIO_USER_REGION_WRITE_MULTI").
 *
 * Codecs check structure only. The handler must still check `count` against the negotiated
 * max_data_xfer_size (spec, "Read and Write Operations") before allocating a reply buffer.
 * Decoded `data` fields are views into the input buffer, not copies.
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import { requireExact, requireNoWrap, struct } from "./wire.ts";

/** A region access without data: REGION_READ request, REGION_WRITE reply. */
export interface RegionAccess {
  /** Offset inside the region. */
  offset: bigint;
  /** Region index. */
  region: number;
  /** Bytes to transfer (u32). */
  count: number;
}

/** A region access with its data: REGION_READ reply, REGION_WRITE request. count = data.length. */
export interface RegionData {
  /** Offset inside the region. */
  offset: bigint;
  /** Region index. */
  region: number;
  /** The bytes read or to write. */
  data: Uint8Array;
}

/** offset u64, region u32, count u32: every region access, and the head of one with data. */
const ACCESS = struct({ offset: "u64", region: "u32", count: "u32" });
const SIZE = ACCESS.SIZE;

function decodeAccess(payload: Uint8Array, what: string): RegionAccess {
  const a = ACCESS.decode(payload, what);
  requireNoWrap(a.offset, BigInt(a.count), `${what} range`);
  return a;
}

function decodeData(payload: Uint8Array, what: string): RegionData {
  const { offset, region, count } = ACCESS.decodeHead(payload, what);
  requireExact(payload, SIZE + count, `${what} (count ${count})`);
  requireNoWrap(offset, BigInt(count), `${what} range`);
  return { offset, region, data: payload.subarray(SIZE) };
}

function encodeData(d: RegionData): Uint8Array {
  return ACCESS.encode({ offset: d.offset, region: d.region, count: d.data.length }, d.data);
}

/** REGION_READ: request offset u64, region u32, count u32; reply the same + count bytes. */
export const RegionRead = {
  /** Request payload size and fixed part of the reply. */
  SIZE,
  /** Decodes a request. */
  decodeRequest(payload: Uint8Array): RegionAccess {
    return decodeAccess(payload, "REGION_READ");
  },
  /** Encodes a request. */
  encodeRequest: ACCESS.encode,
  /** Decodes a reply; count must equal the data bytes present. */
  decodeReply(payload: Uint8Array): RegionData {
    return decodeData(payload, "REGION_READ reply");
  },
  /** Encodes a reply (count = data.length). */
  encodeReply(reply: RegionData): Uint8Array {
    return encodeData(reply);
  },
} as const;

/** REGION_WRITE: request offset u64, region u32, count u32, data; reply the 16-byte header. */
export const RegionWrite = {
  /** Fixed part of the request and reply payload size. */
  SIZE,
  /** Decodes a request; count must equal the data bytes present. */
  decodeRequest(payload: Uint8Array): RegionData {
    return decodeData(payload, "REGION_WRITE");
  },
  /** Encodes a request (count = data.length). */
  encodeRequest(req: RegionData): Uint8Array {
    return encodeData(req);
  },
  /** Decodes a reply. */
  decodeReply(payload: Uint8Array): RegionAccess {
    return decodeAccess(payload, "REGION_WRITE reply");
  },
  /** Encodes a reply. */
  encodeReply: ACCESS.encode,
} as const;

/** A REGION_WRITE_MULTI reply: number of writes completed. */
export interface WriteMultiReply {
  /** wr_cnt (u64 on the wire). */
  wrCnt: number;
}

/** A REGION_WRITE_MULTI entry: the access, then 8 bytes of data. */
const MULTI_DATA = 8;
const ENTRY = SIZE + MULTI_DATA;
/** wr_cnt u64: the head of a REGION_WRITE_MULTI request, and its reply. */
const COUNT = struct({ wrCnt: "u64" });

/**
 * REGION_WRITE_MULTI: wr_cnt u64, then wr_cnt × {offset u64, region u32, count u32, data[8]};
 * reply wr_cnt u64. Each write carries at most 8 bytes; unused data bytes are sent as zero.
 */
export const RegionWriteMulti = {
  /** Fixed part of the request (wr_cnt) and reply payload size. */
  SIZE: COUNT.SIZE,
  /** Size of one write entry. */
  ENTRY_SIZE: ENTRY,
  /** Largest `count` of one entry. */
  MAX_DATA: MULTI_DATA,
  /**
   * Decodes a request: the payload must hold exactly wr_cnt entries, each with count <= 8.
   * Returns the writes in order (each `data` a view of `count` bytes). wr_cnt 0 is accepted
   * (nothing to do); the spec sets no upper bound besides the message size (QEMU sends <= 200).
   */
  decodeRequest(payload: Uint8Array): RegionData[] {
    const { wrCnt } = COUNT.decodeHead(payload, "REGION_WRITE_MULTI");
    const rest = payload.length - COUNT.SIZE;
    if (rest % ENTRY !== 0) {
      throw new VfioUserError(
        Errno.EINVAL,
        `REGION_WRITE_MULTI: ${rest} entry bytes is not a multiple of ${ENTRY}`,
      );
    }
    const room = rest / ENTRY;
    if (wrCnt !== BigInt(room)) {
      throw new VfioUserError(
        Errno.EINVAL,
        `REGION_WRITE_MULTI: wr_cnt ${wrCnt} does not match ${rest} entry bytes`,
      );
    }
    const writes: RegionData[] = [];
    for (let i = 0; i < room; i++) {
      const off = COUNT.SIZE + ENTRY * i;
      const { offset, region, count } = ACCESS.read(payload, off);
      if (count > MULTI_DATA) {
        throw new VfioUserError(Errno.EINVAL, `REGION_WRITE_MULTI: write ${i} count ${count} > 8`);
      }
      requireNoWrap(offset, BigInt(count), "REGION_WRITE_MULTI range");
      writes.push({ offset, region, data: payload.subarray(off + SIZE, off + SIZE + count) });
    }
    return writes;
  },
  /** Encodes a request; throws `RangeError` for a write longer than 8 bytes. */
  encodeRequest(writes: readonly RegionData[]): Uint8Array {
    const out = COUNT.encode(
      { wrCnt: BigInt(writes.length) },
      new Uint8Array(ENTRY * writes.length),
    );
    writes.forEach((w, i) => {
      if (w.data.length > MULTI_DATA) {
        throw new RangeError(`REGION_WRITE_MULTI entry ${i}: ${w.data.length} bytes > 8`);
      }
      const off = COUNT.SIZE + ENTRY * i;
      ACCESS.write(out, { offset: w.offset, region: w.region, count: w.data.length }, off);
      out.set(w.data, off + SIZE);
    });
    return out;
  },
  /** Decodes a reply. */
  decodeReply(payload: Uint8Array): WriteMultiReply {
    const { wrCnt } = COUNT.decode(payload, "REGION_WRITE_MULTI reply");
    if (wrCnt > 0xffff_ffffn) {
      throw new VfioUserError(Errno.EINVAL, `REGION_WRITE_MULTI reply: wr_cnt ${wrCnt} too large`);
    }
    return { wrCnt: Number(wrCnt) };
  },
  /** Encodes a reply. */
  encodeReply(reply: WriteMultiReply): Uint8Array {
    return COUNT.encode({ wrCnt: BigInt(reply.wrCnt) });
  },
} as const;
