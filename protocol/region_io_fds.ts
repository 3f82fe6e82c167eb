/**
 * DEVICE_GET_REGION_IO_FDS (6) payloads (spec, "VFIO_USER_DEVICE_GET_REGION_IO_FDS",
 * "Sub-Region IO FD info format (ioeventfd)" and "(ioregionfd)").
 *
 * The fds themselves travel as ancillary data with the reply; `fdIndex` points into that array.
 * QEMU's client never sends this command; our own test client does.
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import {
  decodeIndexQuery,
  encodeIndexQuery,
  requireArgsz,
  requireExact,
  requireFlags,
  requireMin,
  requireZero,
  setU32,
  setU64,
  viewOf,
} from "./wire.ts";

/** Sub-region types (libvfio-user numbering: 0 ioeventfd, 1 ioregionfd). */
export const IoFdType = {
  IOEVENTFD: 0,
  IOREGIONFD: 1,
} as const;

/** Flags of an ioeventfd sub-region (KVM_IOEVENTFD_FLAG_*: DATAMATCH, PIO, VIRTIO_CCW_NOTIFY). */
export const IoEventFdFlags = {
  DATAMATCH: 1,
  PIO: 2,
  VIRTIO_CCW_NOTIFY: 8,
} as const;

/** Flags of an ioregionfd sub-region (KVM_IOREGION_*: PIO, POSTED_WRITES). */
export const IoRegionFdFlags = {
  PIO: 1,
  POSTED_WRITES: 2,
} as const;

/** One sub-region: a span of the region served through an fd. */
export interface IoFdSubRegion {
  /** Start inside the region. */
  offset: bigint;
  /** Length; 0 means any access size. */
  size: bigint;
  /** Index into the reply's fd array (fds may be shared). */
  fdIndex: number;
  /** `IoFdType`. */
  type: number;
  /** `IoEventFdFlags` or `IoRegionFdFlags`, by `type`. */
  flags: number;
  /** ioeventfd: the datamatch value; ioregionfd: the opaque user_data. */
  datamatch: bigint;
}

/** A DEVICE_GET_REGION_IO_FDS request: only `argsz` and `index` may be non-zero. */
export interface RegionIoFdsRequest {
  /** Largest reply payload the client accepts (>= 16). */
  argsz: number;
  /** Region index. */
  index: number;
}

/** What the server reports: the sub-regions of one region. */
export interface RegionIoFds {
  /** Region index. */
  index: number;
  /** The sub-regions; `count` on the wire is their number. */
  subRegions: IoFdSubRegion[];
}

/** A decoded reply. When `argsz` > payload the reply was cut: no sub-regions, retry. */
export interface RegionIoFdsReply extends RegionIoFds {
  /** Size of the full reply (16 + 40 × count). */
  argsz: number;
  /** Number of sub-regions of the region (also when the reply was cut). */
  count: number;
}

const SIZE = 16;
const ENTRY = 40;

function decodeEntry(v: DataView, off: number): IoFdSubRegion {
  const type = v.getUint32(off + 20, true);
  const flags = v.getUint32(off + 24, true);
  if (type === IoFdType.IOEVENTFD) {
    requireFlags(
      flags,
      IoEventFdFlags.DATAMATCH | IoEventFdFlags.PIO | IoEventFdFlags.VIRTIO_CCW_NOTIFY,
      "ioeventfd flags",
    );
  } else if (type === IoFdType.IOREGIONFD) {
    requireFlags(flags, IoRegionFdFlags.PIO | IoRegionFdFlags.POSTED_WRITES, "ioregionfd flags");
  } else {
    throw new VfioUserError(Errno.EINVAL, `io fd sub-region: unknown type ${type}`);
  }
  requireZero(v.getUint32(off + 28, true), "io fd sub-region padding");
  return {
    offset: v.getBigUint64(off, true),
    size: v.getBigUint64(off + 8, true),
    fdIndex: v.getUint32(off + 16, true),
    type,
    flags,
    datamatch: v.getBigUint64(off + 32, true),
  };
}

/**
 * DEVICE_GET_REGION_IO_FDS: argsz, flags (0), index, count (u32 each); the reply adds count
 * 40-byte sub-regions. We use a fixed 40-byte stride and argsz = 16 + 40 × count.
 */
export const DeviceGetRegionIoFds = {
  /** Request payload size and fixed part of the reply. */
  SIZE,
  /** Size of one sub-region entry. */
  ENTRY_SIZE: ENTRY,
  /** Decodes a request: argsz >= 16; flags and count must be zero. */
  decodeRequest(payload: Uint8Array): RegionIoFdsRequest {
    return decodeIndexQuery(payload, "DEVICE_GET_REGION_IO_FDS");
  },
  /** Encodes a request. */
  encodeRequest(req: RegionIoFdsRequest): Uint8Array {
    return encodeIndexQuery(req);
  },
  /** Size of the full reply payload. */
  replySize(info: RegionIoFds): number {
    return SIZE + ENTRY * info.subRegions.length;
  },
  /** Whether the full reply fits `argsz` (when not, send no fds with the cut reply). */
  replyFits(info: RegionIoFds, argsz: number): boolean {
    return SIZE + ENTRY * info.subRegions.length <= argsz;
  },
  /**
   * Encodes a reply no longer than `maxArgsz`. When the sub-regions do not fit, the reply is the
   * 16-byte struct with argsz = size needed and count = number of sub-regions, no entries.
   */
  encodeReply(info: RegionIoFds, maxArgsz: number): Uint8Array {
    const n = info.subRegions.length;
    const need = SIZE + ENTRY * n;
    const full = need <= maxArgsz;
    const out = new Uint8Array(full ? need : SIZE);
    const v = viewOf(out);
    setU32(v, 0, need, "argsz");
    setU32(v, 8, info.index, "index");
    setU32(v, 12, n, "count");
    if (full) {
      info.subRegions.forEach((s, i) => {
        const off = SIZE + ENTRY * i;
        setU64(v, off, s.offset, "offset");
        setU64(v, off + 8, s.size, "size");
        setU32(v, off + 16, s.fdIndex, "fdIndex");
        setU32(v, off + 20, s.type, "type");
        setU32(v, off + 24, s.flags, "flags");
        setU64(v, off + 32, s.datamatch, "datamatch");
      });
    }
    return out;
  },
  /** Decodes a reply: full (argsz == payload == 16 + 40 × count) or cut (16 bytes). */
  decodeReply(payload: Uint8Array): RegionIoFdsReply {
    requireMin(payload, SIZE, "DEVICE_GET_REGION_IO_FDS reply");
    const v = viewOf(payload);
    const argsz = v.getUint32(0, true);
    requireArgsz(argsz, SIZE, "DEVICE_GET_REGION_IO_FDS reply");
    requireZero(v.getUint32(4, true), "DEVICE_GET_REGION_IO_FDS reply flags");
    const index = v.getUint32(8, true);
    const count = v.getUint32(12, true);
    const need = SIZE + ENTRY * count;
    if (argsz !== need) {
      throw new VfioUserError(
        Errno.EINVAL,
        `DEVICE_GET_REGION_IO_FDS reply: argsz ${argsz} != ${need} for ${count} sub-regions`,
      );
    }
    if (argsz > payload.length) {
      requireExact(payload, SIZE, "DEVICE_GET_REGION_IO_FDS cut reply");
      return { argsz, index, count, subRegions: [] };
    }
    requireExact(payload, argsz, "DEVICE_GET_REGION_IO_FDS reply");
    const subRegions: IoFdSubRegion[] = [];
    for (let i = 0; i < count; i++) subRegions.push(decodeEntry(v, SIZE + ENTRY * i));
    return { argsz, index, count, subRegions };
  },
} as const;
