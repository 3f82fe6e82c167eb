/**
 * MIG_DATA_READ (17) and MIG_DATA_WRITE (18) payloads (spec, "VFIO_USER_MIG_DATA_READ",
 * "VFIO_USER_MIG_DATA_WRITE"). Migration data is a stream: a read reply shorter than asked
 * means the end of it.
 *
 * The handler must still check `size` against the negotiated max_data_xfer_size.
 * Decoded `data` fields are views into the input buffer.
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import { NoPayload } from "./message.ts";
import { requireArgsz, requireExact, requireMin, setU32, viewOf } from "./wire.ts";

/** A MIG_DATA_READ request. */
export interface MigDataReadRequest {
  /** Largest reply payload accepted; must be >= 8 + size. */
  argsz: number;
  /** Bytes of migration data wanted. */
  size: number;
}

/** A MIG_DATA_READ reply (argsz = 8 + data.length, size = data.length). */
export interface MigDataReadReply {
  /** The migration data; shorter than asked = end of stream. */
  data: Uint8Array;
}

/** A MIG_DATA_WRITE request (size = data.length). */
export interface MigDataWriteRequest {
  /** Sent as given; our encoder defaults it to 8 + data.length like libvfio-user's client. */
  argsz: number;
  /** The migration data. */
  data: Uint8Array;
}

const SIZE = 8;

/** MIG_DATA_READ: request argsz u32, size u32; reply argsz, size, data at offset 8. */
export const MigDataRead = {
  /** Request payload size and fixed part of the reply. */
  SIZE,
  /** Decodes a request; argsz must leave room for the 8-byte reply header and `size` bytes. */
  decodeRequest(payload: Uint8Array): MigDataReadRequest {
    requireExact(payload, SIZE, "MIG_DATA_READ");
    const v = viewOf(payload);
    const req = { argsz: v.getUint32(0, true), size: v.getUint32(4, true) };
    if (req.argsz < SIZE + req.size) {
      throw new VfioUserError(
        Errno.EINVAL,
        `MIG_DATA_READ: argsz ${req.argsz} < ${SIZE} + size ${req.size}`,
      );
    }
    return req;
  },
  /** Encodes a request. */
  encodeRequest(req: MigDataReadRequest): Uint8Array {
    const out = new Uint8Array(SIZE);
    const v = viewOf(out);
    setU32(v, 0, req.argsz, "argsz");
    setU32(v, 4, req.size, "size");
    return out;
  },
  /** Decodes a reply: argsz == payload length == 8 + size. */
  decodeReply(payload: Uint8Array): MigDataReadReply {
    requireMin(payload, SIZE, "MIG_DATA_READ reply");
    const v = viewOf(payload);
    const argsz = v.getUint32(0, true);
    const size = v.getUint32(4, true);
    requireExact(payload, SIZE + size, `MIG_DATA_READ reply (size ${size})`);
    if (argsz !== payload.length) {
      throw new VfioUserError(
        Errno.EINVAL,
        `MIG_DATA_READ reply: argsz ${argsz} != ${payload.length}`,
      );
    }
    return { data: payload.subarray(SIZE) };
  },
  /** Encodes a reply. */
  encodeReply(reply: MigDataReadReply): Uint8Array {
    const out = new Uint8Array(SIZE + reply.data.length);
    const v = viewOf(out);
    setU32(v, 0, out.length, "argsz");
    setU32(v, 4, reply.data.length, "size");
    out.set(reply.data, SIZE);
    return out;
  },
} as const;

/** MIG_DATA_WRITE: request argsz u32, size u32, data at offset 8; empty reply. */
export const MigDataWrite = {
  /** Fixed part of the request. */
  SIZE,
  /**
   * Decodes a request: size == data bytes present, argsz >= 8. argsz is not compared with
   * size: the spec calls it the largest reply payload (there is none), libvfio-user's client
   * sends 8 + size; both are accepted.
   */
  decodeRequest(payload: Uint8Array): MigDataWriteRequest {
    requireMin(payload, SIZE, "MIG_DATA_WRITE");
    const v = viewOf(payload);
    const argsz = v.getUint32(0, true);
    requireArgsz(argsz, SIZE, "MIG_DATA_WRITE");
    const size = v.getUint32(4, true);
    requireExact(payload, SIZE + size, `MIG_DATA_WRITE (size ${size})`);
    return { argsz, data: payload.subarray(SIZE) };
  },
  /** Encodes a request (size = data.length). */
  encodeRequest(req: MigDataWriteRequest): Uint8Array {
    const out = new Uint8Array(SIZE + req.data.length);
    const v = viewOf(out);
    setU32(v, 0, req.argsz, "argsz");
    setU32(v, 4, req.data.length, "size");
    out.set(req.data, SIZE);
    return out;
  },
  /** The reply has no payload. */
  decodeReply(payload: Uint8Array): void {
    NoPayload.decode(payload, "MIG_DATA_WRITE reply");
  },
  /** The reply has no payload. */
  encodeReply(): Uint8Array {
    return NoPayload.encode();
  },
} as const;
