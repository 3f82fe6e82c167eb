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
import { requireExact, requireMin, requireNoWrap, setU32, setU64, viewOf } from "./wire.ts";

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

const SIZE = 16;

function decodeAccess(payload: Uint8Array, what: string): RegionAccess {
  requireExact(payload, SIZE, what);
  const v = viewOf(payload);
  const a = {
    offset: v.getBigUint64(0, true),
    region: v.getUint32(8, true),
    count: v.getUint32(12, true),
  };
  requireNoWrap(a.offset, BigInt(a.count), `${what} range`);
  return a;
}

function encodeAccess(a: RegionAccess): Uint8Array {
  const out = new Uint8Array(SIZE);
  const v = viewOf(out);
  setU64(v, 0, a.offset, "offset");
  setU32(v, 8, a.region, "region");
  setU32(v, 12, a.count, "count");
  return out;
}

function decodeData(payload: Uint8Array, what: string): RegionData {
  requireMin(payload, SIZE, what);
  const v = viewOf(payload);
  const count = v.getUint32(12, true);
  requireExact(payload, SIZE + count, `${what} (count ${count})`);
  const offset = v.getBigUint64(0, true);
  requireNoWrap(offset, BigInt(count), `${what} range`);
  return { offset, region: v.getUint32(8, true), data: payload.subarray(SIZE) };
}

function encodeData(d: RegionData): Uint8Array {
  const out = new Uint8Array(SIZE + d.data.length);
  const v = viewOf(out);
  setU64(v, 0, d.offset, "offset");
  setU32(v, 8, d.region, "region");
  setU32(v, 12, d.data.length, "count");
  out.set(d.data, SIZE);
  return out;
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
  encodeRequest(req: RegionAccess): Uint8Array {
    return encodeAccess(req);
  },
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
  encodeReply(reply: RegionAccess): Uint8Array {
    return encodeAccess(reply);
  },
} as const;

/** A REGION_WRITE_MULTI reply: number of writes completed. */
export interface WriteMultiReply {
  /** wr_cnt (u64 on the wire). */
  wrCnt: number;
}

const ENTRY = 24;
const MULTI_DATA = 8;

/**
 * REGION_WRITE_MULTI: wr_cnt u64, then wr_cnt × {offset u64, region u32, count u32, data[8]};
 * reply wr_cnt u64. Each write carries at most 8 bytes; unused data bytes are sent as zero.
 */
export const RegionWriteMulti = {
  /** Fixed part of the request (wr_cnt) and reply payload size. */
  SIZE: 8,
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
    requireMin(payload, 8, "REGION_WRITE_MULTI");
    const v = viewOf(payload);
    const wrCnt = v.getBigUint64(0, true);
    const rest = payload.length - 8;
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
        `REGION_WRITE_MULTI: wr_cnt ${wrCnt} does not match ${payload.length - 8} entry bytes`,
      );
    }
    const writes: RegionData[] = [];
    for (let i = 0; i < room; i++) {
      const off = 8 + ENTRY * i;
      const count = v.getUint32(off + 12, true);
      if (count > MULTI_DATA) {
        throw new VfioUserError(Errno.EINVAL, `REGION_WRITE_MULTI: write ${i} count ${count} > 8`);
      }
      const offset = v.getBigUint64(off, true);
      requireNoWrap(offset, BigInt(count), "REGION_WRITE_MULTI range");
      writes.push({
        offset,
        region: v.getUint32(off + 8, true),
        data: payload.subarray(off + 16, off + 16 + count),
      });
    }
    return writes;
  },
  /** Encodes a request; throws `RangeError` for a write longer than 8 bytes. */
  encodeRequest(writes: readonly RegionData[]): Uint8Array {
    const out = new Uint8Array(8 + ENTRY * writes.length);
    const v = viewOf(out);
    setU64(v, 0, BigInt(writes.length), "wr_cnt");
    writes.forEach((w, i) => {
      if (w.data.length > MULTI_DATA) {
        throw new RangeError(`REGION_WRITE_MULTI entry ${i}: ${w.data.length} bytes > 8`);
      }
      const off = 8 + ENTRY * i;
      setU64(v, off, w.offset, "offset");
      setU32(v, off + 8, w.region, "region");
      setU32(v, off + 12, w.data.length, "count");
      out.set(w.data, off + 16);
    });
    return out;
  },
  /** Decodes a reply. */
  decodeReply(payload: Uint8Array): WriteMultiReply {
    requireExact(payload, 8, "REGION_WRITE_MULTI reply");
    const wrCnt = viewOf(payload).getBigUint64(0, true);
    if (wrCnt > 0xffff_ffffn) {
      throw new VfioUserError(Errno.EINVAL, `REGION_WRITE_MULTI reply: wr_cnt ${wrCnt} too large`);
    }
    return { wrCnt: Number(wrCnt) };
  },
  /** Encodes a reply. */
  encodeReply(reply: WriteMultiReply): Uint8Array {
    const out = new Uint8Array(8);
    setU64(viewOf(out), 0, BigInt(reply.wrCnt), "wr_cnt");
    return out;
  },
} as const;
