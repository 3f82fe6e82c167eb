/**
 * DMA_MAP (2), DMA_UNMAP (3), DMA_READ (11) and DMA_WRITE (12) payloads
 * (spec, "VFIO_USER_DMA_MAP", "VFIO_USER_DMA_UNMAP", "VFIO_USER_DMA_READ", "VFIO_USER_DMA_WRITE").
 *
 * DMA_READ and DMA_WRITE are sent by the server: the server encodes their requests and decodes
 * their replies. Decoded `data` fields are views into the input buffer, not copies.
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import { NoPayload } from "./message.ts";
import {
  requireArgsz,
  requireExact,
  requireFlags,
  requireMin,
  requireNoWrap,
  setU32,
  setU64,
  viewOf,
} from "./wire.ts";

/** DMA_MAP flag bits (spec, "VFIO_USER_DMA_MAP": bit 0 readable, bit 1 writeable). */
export const DmaMapFlags = {
  READ: 1,
  WRITE: 2,
} as const;

/**
 * DMA_UNMAP flag bits. The spec says the field is unused, but QEMU's client sends
 * `VFIO_DMA_UNMAP_FLAG_ALL` (bit 1, with address 0 and size 0) to drop every mapping, so we
 * accept exactly that bit. Bit 0 (the removed GET_DIRTY_BITMAP) and all others are rejected.
 */
export const DmaUnmapFlags = {
  ALL: 2,
} as const;

/** A decoded DMA_MAP request. The optional fd travels as ancillary data, not here. */
export interface DmaMapRequest {
  /** `DmaMapFlags` bits. */
  flags: number;
  /** Offset of the region in the fd, 0 when no fd is sent. */
  offset: bigint;
  /** Base DMA (guest) address. */
  address: bigint;
  /** Length in bytes. */
  size: bigint;
}

/** DMA_MAP: argsz u32, flags u32, offset u64, address u64, size u64; empty reply. */
export const DmaMap = {
  /** Request payload size; also the only valid `argsz`. */
  SIZE: 32,
  /** Decodes a request. argsz must be 32 ("the size of the above structure"). */
  decodeRequest(payload: Uint8Array): DmaMapRequest {
    requireExact(payload, DmaMap.SIZE, "DMA_MAP");
    const v = viewOf(payload);
    const argsz = v.getUint32(0, true);
    if (argsz !== DmaMap.SIZE) {
      throw new VfioUserError(Errno.EINVAL, `DMA_MAP: argsz ${argsz} != ${DmaMap.SIZE}`);
    }
    const flags = v.getUint32(4, true);
    requireFlags(flags, DmaMapFlags.READ | DmaMapFlags.WRITE, "DMA_MAP flags");
    const req = {
      flags,
      offset: v.getBigUint64(8, true),
      address: v.getBigUint64(16, true),
      size: v.getBigUint64(24, true),
    };
    requireNoWrap(req.address, req.size, "DMA_MAP range");
    requireNoWrap(req.offset, req.size, "DMA_MAP fd range");
    return req;
  },
  /** Encodes a request (argsz = 32). */
  encodeRequest(req: DmaMapRequest): Uint8Array {
    const out = new Uint8Array(DmaMap.SIZE);
    const v = viewOf(out);
    setU32(v, 0, DmaMap.SIZE, "argsz");
    setU32(v, 4, req.flags, "flags");
    setU64(v, 8, req.offset, "offset");
    setU64(v, 16, req.address, "address");
    setU64(v, 24, req.size, "size");
    return out;
  },
  /** The reply has no payload. */
  decodeReply(payload: Uint8Array): void {
    NoPayload.decode(payload, "DMA_MAP reply");
  },
  /** The reply has no payload. */
  encodeReply(): Uint8Array {
    return NoPayload.encode();
  },
} as const;

/** A DMA_UNMAP request, and its reply (the server echoes the entry). */
export interface DmaUnmapEntry {
  /** Request: largest reply payload the client accepts (>= 24). Reply: echoed. */
  argsz: number;
  /** `DmaUnmapFlags` bits. */
  flags: number;
  /** Base DMA address; must match a mapping exactly (checked by the handler). */
  address: bigint;
  /** Length in bytes. */
  size: bigint;
}

function decodeUnmap(payload: Uint8Array, what: string): DmaUnmapEntry {
  requireExact(payload, DmaUnmap.SIZE, what);
  const v = viewOf(payload);
  const argsz = v.getUint32(0, true);
  requireArgsz(argsz, DmaUnmap.SIZE, what);
  const flags = v.getUint32(4, true);
  requireFlags(flags, DmaUnmapFlags.ALL, `${what} flags`);
  const entry = {
    argsz,
    flags,
    address: v.getBigUint64(8, true),
    size: v.getBigUint64(16, true),
  };
  requireNoWrap(entry.address, entry.size, `${what} range`);
  return entry;
}

function encodeUnmap(entry: DmaUnmapEntry): Uint8Array {
  const out = new Uint8Array(DmaUnmap.SIZE);
  const v = viewOf(out);
  setU32(v, 0, entry.argsz, "argsz");
  setU32(v, 4, entry.flags, "flags");
  setU64(v, 8, entry.address, "address");
  setU64(v, 16, entry.size, "size");
  return out;
}

/** DMA_UNMAP: argsz u32, flags u32, address u64, size u64; the reply is the same entry. */
export const DmaUnmap = {
  /** Request and reply payload size. */
  SIZE: 24,
  /** Decodes a request; argsz must leave room for the 24-byte reply. */
  decodeRequest(payload: Uint8Array): DmaUnmapEntry {
    return decodeUnmap(payload, "DMA_UNMAP");
  },
  /** Encodes a request. */
  encodeRequest(req: DmaUnmapEntry): Uint8Array {
    return encodeUnmap(req);
  },
  /** Decodes the reply entry. */
  decodeReply(payload: Uint8Array): DmaUnmapEntry {
    return decodeUnmap(payload, "DMA_UNMAP reply");
  },
  /** Encodes the reply: pass the decoded request to echo it as the spec asks. */
  encodeReply(entry: DmaUnmapEntry): Uint8Array {
    return encodeUnmap(entry);
  },
} as const;

/** A DMA_READ request (server → client): read `count` bytes at `address`. */
export interface DmaReadRequest {
  /** Guest DMA address. */
  address: bigint;
  /** Bytes to read. */
  count: bigint;
}

/** A DMA access with its data: DMA_READ reply or DMA_WRITE request. `count` = `data.length`. */
export interface DmaData {
  /** Guest DMA address. */
  address: bigint;
  /** The bytes read or to write. */
  data: Uint8Array;
}

/** Decodes `address u64, count u64, data` with count == bytes present. */
function decodeDmaData(payload: Uint8Array, what: string): DmaData {
  requireMin(payload, 16, what);
  const v = viewOf(payload);
  const address = v.getBigUint64(0, true);
  const count = v.getBigUint64(8, true);
  const present = payload.length - 16;
  if (count !== BigInt(present)) {
    throw new VfioUserError(Errno.EINVAL, `${what}: count ${count} != ${present} data bytes`);
  }
  requireNoWrap(address, count, `${what} range`);
  return { address, data: payload.subarray(16) };
}

function encodeDmaData(msg: DmaData): Uint8Array {
  const out = new Uint8Array(16 + msg.data.length);
  const v = viewOf(out);
  setU64(v, 0, msg.address, "address");
  setU64(v, 8, BigInt(msg.data.length), "count");
  out.set(msg.data, 16);
  return out;
}

/** DMA_READ: request address u64, count u64; reply address, count, data at offset 16. */
export const DmaRead = {
  /** Request payload size (and the reply's fixed part). */
  SIZE: 16,
  /** Decodes a request (used by the in-repo test client). */
  decodeRequest(payload: Uint8Array): DmaReadRequest {
    requireExact(payload, DmaRead.SIZE, "DMA_READ");
    const v = viewOf(payload);
    const req = { address: v.getBigUint64(0, true), count: v.getBigUint64(8, true) };
    requireNoWrap(req.address, req.count, "DMA_READ range");
    return req;
  },
  /** Encodes a request. */
  encodeRequest(req: DmaReadRequest): Uint8Array {
    const out = new Uint8Array(DmaRead.SIZE);
    const v = viewOf(out);
    setU64(v, 0, req.address, "address");
    setU64(v, 8, req.count, "count");
    return out;
  },
  /** Decodes a reply; `count` must equal the data bytes present. */
  decodeReply(payload: Uint8Array): DmaData {
    return decodeDmaData(payload, "DMA_READ reply");
  },
  /** Encodes a reply (count = data.length). */
  encodeReply(reply: DmaData): Uint8Array {
    return encodeDmaData(reply);
  },
} as const;

/** A DMA_WRITE reply as far as a client sends one (see `DmaWrite.decodeReply`). */
export interface DmaWriteReply {
  /** Guest DMA address written. */
  address: bigint;
  /** Bytes written. */
  count: bigint;
}

/** DMA_WRITE: request address u64, count u64, data at offset 16; reply see `decodeReply`. */
export const DmaWrite = {
  /** Fixed part of the request payload. */
  SIZE: 16,
  /** Size of the reply payload we encode (address u64, count u64). */
  REPLY_SIZE: 16,
  /** Decodes a request (used by the in-repo test client); count == data bytes present. */
  decodeRequest(payload: Uint8Array): DmaData {
    return decodeDmaData(payload, "DMA_WRITE");
  },
  /** Encodes a request (count = data.length). */
  encodeRequest(req: DmaData): Uint8Array {
    return encodeDmaData(req);
  },
  /**
   * Decodes a reply. Three shapes are accepted: empty (what QEMU 11.1 sends; returns `null`),
   * 12 bytes (the spec's table: address u64, count u32) and 16 bytes (address u64, count u64,
   * as libvfio-user and our `encodeReply` do).
   */
  decodeReply(payload: Uint8Array): DmaWriteReply | null {
    if (payload.length === 0) return null;
    const v = viewOf(payload);
    if (payload.length === 12) {
      return { address: v.getBigUint64(0, true), count: BigInt(v.getUint32(8, true)) };
    }
    requireExact(payload, DmaWrite.REPLY_SIZE, "DMA_WRITE reply");
    return { address: v.getBigUint64(0, true), count: v.getBigUint64(8, true) };
  },
  /** Encodes a reply: 16 bytes, or empty (QEMU's shape) when `reply` is null. */
  encodeReply(reply: DmaWriteReply | null): Uint8Array {
    if (reply === null) return NoPayload.encode();
    const out = new Uint8Array(DmaWrite.REPLY_SIZE);
    const v = viewOf(out);
    setU64(v, 0, reply.address, "address");
    setU64(v, 8, reply.count, "count");
    return out;
  },
} as const;
