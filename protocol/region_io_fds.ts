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
  type IndexQuery,
  indexQueryRequest,
  IndexStruct,
  requireArgsz,
  requireExact,
  requireFlags,
  requireZero,
  struct,
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
export type RegionIoFdsRequest = IndexQuery;

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

const SIZE = IndexStruct.SIZE;
/** One sub-region on the wire: the fields of {@link IoFdSubRegion} with 4 bytes of padding. */
const SUB = struct({
  offset: "u64",
  size: "u64",
  fdIndex: "u32",
  type: "u32",
  flags: "u32",
  padding: "u32",
  datamatch: "u64",
});
const ENTRY = SUB.SIZE;

function decodeEntry(payload: Uint8Array, off: number): IoFdSubRegion {
  const { padding, ...sub } = SUB.read(payload, off);
  const { type, flags } = sub;
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
  requireZero(padding, "io fd sub-region padding");
  return sub;
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
  ...indexQueryRequest("DEVICE_GET_REGION_IO_FDS"),
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
    const head = { argsz: need, flags: 0, index: info.index, count: n };
    if (!full) return IndexStruct.encode(head);
    const out = IndexStruct.encode(head, new Uint8Array(ENTRY * n));
    SUB.writeArray(out, info.subRegions.map((s) => ({ ...s, padding: 0 })), SIZE);
    return out;
  },
  /** Decodes a reply: full (argsz == payload == 16 + 40 × count) or cut (16 bytes). */
  decodeReply(payload: Uint8Array): RegionIoFdsReply {
    const { argsz, flags, index, count } = IndexStruct.decodeHead(
      payload,
      "DEVICE_GET_REGION_IO_FDS reply",
    );
    requireArgsz(argsz, SIZE, "DEVICE_GET_REGION_IO_FDS reply");
    requireZero(flags, "DEVICE_GET_REGION_IO_FDS reply flags");
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
    for (let i = 0; i < count; i++) subRegions.push(decodeEntry(payload, SIZE + ENTRY * i));
    return { argsz, index, count, subRegions };
  },
} as const;
