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
import { requireArgsz, requireFlags, requireNoWrap, struct } from "./wire.ts";

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

const MAP = struct({ argsz: "u32", flags: "u32", offset: "u64", address: "u64", size: "u64" });

/** DMA_MAP: argsz u32, flags u32, offset u64, address u64, size u64; empty reply. */
export const DmaMap = {
  /** Request payload size; also the only valid `argsz`. */
  SIZE: MAP.SIZE,
  /** Decodes a request. argsz must be 32 ("the size of the above structure"). */
  decodeRequest(payload: Uint8Array): DmaMapRequest {
    const { argsz, ...req } = MAP.decode(payload, "DMA_MAP");
    if (argsz !== MAP.SIZE) {
      throw new VfioUserError(Errno.EINVAL, `DMA_MAP: argsz ${argsz} != ${MAP.SIZE}`);
    }
    requireFlags(req.flags, DmaMapFlags.READ | DmaMapFlags.WRITE, "DMA_MAP flags");
    requireNoWrap(req.address, req.size, "DMA_MAP range");
    requireNoWrap(req.offset, req.size, "DMA_MAP fd range");
    return req;
  },
  /** Encodes a request (argsz = 32). */
  encodeRequest(req: DmaMapRequest): Uint8Array {
    return MAP.encode({ ...req, argsz: MAP.SIZE });
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

const UNMAP = struct({ argsz: "u32", flags: "u32", address: "u64", size: "u64" });

function decodeUnmap(payload: Uint8Array, what: string): DmaUnmapEntry {
  const entry = UNMAP.decode(payload, what);
  requireArgsz(entry.argsz, UNMAP.SIZE, what);
  requireFlags(entry.flags, DmaUnmapFlags.ALL, `${what} flags`);
  requireNoWrap(entry.address, entry.size, `${what} range`);
  return entry;
}

/** DMA_UNMAP: argsz u32, flags u32, address u64, size u64; the reply is the same entry. */
export const DmaUnmap = {
  /** Request and reply payload size. */
  SIZE: UNMAP.SIZE,
  /** Decodes a request; argsz must leave room for the 24-byte reply. */
  decodeRequest(payload: Uint8Array): DmaUnmapEntry {
    return decodeUnmap(payload, "DMA_UNMAP");
  },
  /** Encodes a request. */
  encodeRequest: UNMAP.encode,
  /** Decodes the reply entry. */
  decodeReply(payload: Uint8Array): DmaUnmapEntry {
    return decodeUnmap(payload, "DMA_UNMAP reply");
  },
  /** Encodes the reply: pass the decoded request to echo it as the spec asks. */
  encodeReply: UNMAP.encode,
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

/** address u64, count u64: a DMA_READ request, the head of DMA_READ replies and DMA_WRITEs. */
const ACCESS = struct({ address: "u64", count: "u64" });

/** Decodes `address u64, count u64, data` with count == bytes present. */
function decodeDmaData(payload: Uint8Array, what: string): DmaData {
  const { address, count } = ACCESS.decodeHead(payload, what);
  const present = payload.length - ACCESS.SIZE;
  if (count !== BigInt(present)) {
    throw new VfioUserError(Errno.EINVAL, `${what}: count ${count} != ${present} data bytes`);
  }
  requireNoWrap(address, count, `${what} range`);
  return { address, data: payload.subarray(ACCESS.SIZE) };
}

function encodeDmaData(msg: DmaData): Uint8Array {
  return ACCESS.encode({ address: msg.address, count: BigInt(msg.data.length) }, msg.data);
}

/** DMA_READ: request address u64, count u64; reply address, count, data at offset 16. */
export const DmaRead = {
  /** Request payload size (and the reply's fixed part). */
  SIZE: ACCESS.SIZE,
  /** Decodes a request (used by the in-repo test client). */
  decodeRequest(payload: Uint8Array): DmaReadRequest {
    const req = ACCESS.decode(payload, "DMA_READ");
    requireNoWrap(req.address, req.count, "DMA_READ range");
    return req;
  },
  /** Encodes a request. */
  encodeRequest: ACCESS.encode,
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

/** The DMA_WRITE reply as the spec's table has it: address u64, count u32. */
const SPEC_WRITE_REPLY = struct({ address: "u64", count: "u32" });

/** DMA_WRITE: request address u64, count u64, data at offset 16; reply see `decodeReply`. */
export const DmaWrite = {
  /** Fixed part of the request payload. */
  SIZE: ACCESS.SIZE,
  /** Size of the reply payload we encode (address u64, count u64). */
  REPLY_SIZE: ACCESS.SIZE,
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
    if (payload.length === SPEC_WRITE_REPLY.SIZE) {
      const r = SPEC_WRITE_REPLY.read(payload);
      return { address: r.address, count: BigInt(r.count) };
    }
    return ACCESS.decode(payload, "DMA_WRITE reply");
  },
  /** Encodes a reply: 16 bytes, or empty (QEMU's shape) when `reply` is null. */
  encodeReply(reply: DmaWriteReply | null): Uint8Array {
    return reply === null ? NoPayload.encode() : ACCESS.encode(reply);
  },
} as const;
