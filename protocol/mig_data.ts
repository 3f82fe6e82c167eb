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
import { requireArgsz, requireExact, struct } from "./wire.ts";

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

/** argsz u32, size u32: a MIG_DATA_READ request, the head of its reply and of MIG_DATA_WRITE. */
const HEAD = struct({ argsz: "u32", size: "u32" });
const SIZE = HEAD.SIZE;

/** MIG_DATA_READ: request argsz u32, size u32; reply argsz, size, data at offset 8. */
export const MigDataRead = {
  /** Request payload size and fixed part of the reply. */
  SIZE,
  /** Decodes a request; argsz must leave room for the 8-byte reply header and `size` bytes. */
  decodeRequest(payload: Uint8Array): MigDataReadRequest {
    const req = HEAD.decode(payload, "MIG_DATA_READ");
    if (req.argsz < SIZE + req.size) {
      throw new VfioUserError(
        Errno.EINVAL,
        `MIG_DATA_READ: argsz ${req.argsz} < ${SIZE} + size ${req.size}`,
      );
    }
    return req;
  },
  /** Encodes a request. */
  encodeRequest: HEAD.encode,
  /** Decodes a reply: argsz == payload length == 8 + size. */
  decodeReply(payload: Uint8Array): MigDataReadReply {
    const { argsz, size } = HEAD.decodeHead(payload, "MIG_DATA_READ reply");
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
    const size = reply.data.length;
    return HEAD.encode({ argsz: SIZE + size, size }, reply.data);
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
    const { argsz, size } = HEAD.decodeHead(payload, "MIG_DATA_WRITE");
    requireArgsz(argsz, SIZE, "MIG_DATA_WRITE");
    requireExact(payload, SIZE + size, `MIG_DATA_WRITE (size ${size})`);
    return { argsz, data: payload.subarray(SIZE) };
  },
  /** Encodes a request (size = data.length). */
  encodeRequest(req: MigDataWriteRequest): Uint8Array {
    return HEAD.encode({ argsz: req.argsz, size: req.data.length }, req.data);
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
