/**
 * DEVICE_GET_REGION_INFO (5) payloads and the region capability chain
 * (spec, "VFIO_USER_DEVICE_GET_REGION_INFO", "VFIO region capabilities", "VFIO cap header
 * format", "VFIO sparse mmap cap header").
 *
 * Capability offsets (`cap_offset`, `next`) are relative to the start of the region-info struct,
 * i.e. to the start of the payload. We lay capabilities out right after the 32-byte struct, each
 * 8-byte aligned like the kernel does.
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import {
  requireArgsz,
  requireExact,
  requireFlags,
  requireNoWrap,
  requireZero,
  struct,
} from "./wire.ts";

/** Region flags (spec: bit 0 READ, 1 WRITE, 2 MMAP (one fd with the reply), 3 CAPS). */
export const RegionInfoFlags = {
  READ: 1,
  WRITE: 2,
  MMAP: 4,
  CAPS: 8,
} as const;

/** PCI region indexes (spec, notes: 0-5 BARs, 6 ROM, 7 config space, 8 VGA). */
export const RegionIndex = {
  BAR0: 0,
  BAR1: 1,
  BAR2: 2,
  BAR3: 3,
  BAR4: 4,
  BAR5: 5,
  ROM: 6,
  CONFIG: 7,
  VGA: 8,
} as const;

/** Number of regions of a PCI device (DEVICE_GET_INFO num_regions). */
export const REGION_INDEX_COUNT = 9;

/** Region capability ids (`<linux/vfio.h>` VFIO_REGION_INFO_CAP_*). */
export const RegionCapId = {
  SPARSE_MMAP: 1,
  TYPE: 2,
} as const;

/** One capability of the chain: its header fields and its body (after the 8-byte header). */
export interface RegionCap {
  /** Capability id (`RegionCapId`). */
  id: number;
  /** Capability-specific version. */
  version: number;
  /** Body bytes; on decode, everything up to the next capability (may include padding). */
  data: Uint8Array;
}

/** One mmap-able area of a sparse region, relative to the region's `offset`. */
export interface SparseMmapArea {
  /** Offset inside the region. */
  offset: bigint;
  /** Length in bytes. */
  size: bigint;
}

const SPARSE_HEAD = struct({ nrAreas: "u32", reserved: "u32" });
const AREA = struct({ offset: "u64", size: "u64" });

/** The sparse-mmap capability (id 1, version 1): nr_areas u32, reserved u32, {offset, size}[]. */
export const SparseMmapCap = {
  /** Capability id. */
  ID: RegionCapId.SPARSE_MMAP,
  /** Capability version. */
  VERSION: 1,
  /** Fixed body size before the areas. */
  SIZE: SPARSE_HEAD.SIZE,
  /** Size of one area entry. */
  AREA_SIZE: AREA.SIZE,
  /** Builds the capability from its areas. */
  encode(areas: readonly SparseMmapArea[]): RegionCap {
    const data = SPARSE_HEAD.encode(
      { nrAreas: areas.length, reserved: 0 },
      new Uint8Array(AREA.SIZE * areas.length),
    );
    AREA.writeArray(data, areas, SPARSE_HEAD.SIZE);
    return { id: RegionCapId.SPARSE_MMAP, version: 1, data };
  },
  /** Decodes the areas; the body must hold exactly nr_areas entries (plus alignment padding). */
  decode(cap: RegionCap): SparseMmapArea[] {
    if (cap.id !== RegionCapId.SPARSE_MMAP || cap.version !== 1) {
      throw new VfioUserError(
        Errno.EINVAL,
        `not a sparse mmap v1 capability: id ${cap.id} version ${cap.version}`,
      );
    }
    const { nrAreas: nr, reserved } = SPARSE_HEAD.decodeHead(cap.data, "sparse mmap capability");
    requireZero(reserved, "sparse mmap reserved");
    const need = SPARSE_HEAD.SIZE + AREA.SIZE * nr;
    if (need > cap.data.length || cap.data.length - need >= 8) {
      throw new VfioUserError(
        Errno.EINVAL,
        `sparse mmap: ${nr} areas need ${need} bytes, capability has ${cap.data.length}`,
      );
    }
    const areas = AREA.readArray(cap.data, SPARSE_HEAD.SIZE, nr);
    for (const a of areas) requireNoWrap(a.offset, a.size, "sparse mmap area");
    return areas;
  },
} as const;

/** Device-specific region type (capability id 2, version 1: type u32, subtype u32). */
export interface RegionType {
  /** Region type. */
  type: number;
  /** Region subtype. */
  subtype: number;
}

const TYPE = struct({ type: "u32", subtype: "u32" });

/** The region-type capability, for device-specific regions (spec, "Device-Specific Regions"). */
export const TypeCap = {
  /** Capability id. */
  ID: RegionCapId.TYPE,
  /** Capability version. */
  VERSION: 1,
  /** Body size. */
  SIZE: TYPE.SIZE,
  /** Builds the capability. */
  encode(t: RegionType): RegionCap {
    return { id: RegionCapId.TYPE, version: 1, data: TYPE.encode(t) };
  },
  /** Decodes the capability body. */
  decode(cap: RegionCap): RegionType {
    if (cap.id !== RegionCapId.TYPE || cap.version !== 1) {
      throw new VfioUserError(Errno.EINVAL, `not a type v1 capability: id ${cap.id}`);
    }
    return TYPE.decode(cap.data, "type capability");
  },
} as const;

/** A DEVICE_GET_REGION_INFO request: only `argsz` and `index` may be non-zero. */
export interface RegionInfoRequest {
  /** Largest reply payload the client accepts (>= 32). */
  argsz: number;
  /** Region index. */
  index: number;
}

/** What the server reports about a region. `CAPS` in `flags` is derived from `caps`. */
export interface RegionInfo {
  /** `RegionInfoFlags` bits. */
  flags: number;
  /** Region index. */
  index: number;
  /** Region size in bytes. */
  size: bigint;
  /** mmap offset in the region's fd (and base for sparse areas). */
  offset: bigint;
  /** Capability chain, in order. */
  caps: RegionCap[];
}

/** A decoded DEVICE_GET_REGION_INFO reply. */
export interface RegionInfoReply extends RegionInfo {
  /** Size of the full reply. When larger than the payload, the reply was cut: retry with it. */
  argsz: number;
  /** Offset of the first capability, 0 when none. */
  capOffset: number;
}

const INFO = struct({
  argsz: "u32",
  flags: "u32",
  index: "u32",
  capOffset: "u32",
  size: "u64",
  offset: "u64",
});
const SIZE = INFO.SIZE;
/** A capability's header: id u16, version u16, next u32 (offset of the next one, 0 at the end). */
const CAP = struct({ id: "u16", version: "u16", next: "u32" });
const CAP_HEADER = CAP.SIZE;
const KNOWN_FLAGS = RegionInfoFlags.READ | RegionInfoFlags.WRITE | RegionInfoFlags.MMAP |
  RegionInfoFlags.CAPS;

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Size of the full reply payload for `info`: the struct plus every 8-aligned capability. */
function fullSize(info: RegionInfo): number {
  return info.caps.reduce((n, c) => n + CAP_HEADER + align8(c.data.length), SIZE);
}

function decodeChain(payload: Uint8Array, capOffset: number): RegionCap[] {
  const caps: RegionCap[] = [];
  let off = capOffset;
  if (off < SIZE) {
    throw new VfioUserError(Errno.EINVAL, `region info: cap_offset ${off} inside the struct`);
  }
  while (off !== 0) {
    if (off + CAP_HEADER > payload.length) {
      throw new VfioUserError(Errno.EINVAL, `region info: capability at ${off} past the end`);
    }
    const { id, version, next } = CAP.read(payload, off);
    // Offsets must move forward: this bounds the walk and rules out loops.
    if (next !== 0 && next < off + CAP_HEADER) {
      throw new VfioUserError(Errno.EINVAL, `region info: capability next ${next} goes back`);
    }
    const end = next === 0 ? payload.length : next;
    if (end > payload.length) {
      throw new VfioUserError(Errno.EINVAL, `region info: capability next ${next} past the end`);
    }
    caps.push({ id, version, data: payload.subarray(off + CAP_HEADER, end) });
    off = next;
  }
  return caps;
}

/**
 * DEVICE_GET_REGION_INFO: argsz, flags, index, cap_offset (u32 each), size u64, offset u64,
 * then, in the reply, the capability chain.
 */
export const DeviceGetRegionInfo = {
  /** Request payload size and fixed part of the reply. */
  SIZE,
  /** Size of a capability header (id u16, version u16, next u32). */
  CAP_HEADER_SIZE: CAP_HEADER,
  /** Decodes a request: argsz >= 32; flags, cap_offset, size and offset must be zero. */
  decodeRequest(payload: Uint8Array): RegionInfoRequest {
    const r = INFO.decode(payload, "DEVICE_GET_REGION_INFO");
    requireArgsz(r.argsz, SIZE, "DEVICE_GET_REGION_INFO");
    requireZero(r.flags, "DEVICE_GET_REGION_INFO flags");
    requireZero(r.capOffset, "DEVICE_GET_REGION_INFO cap_offset");
    requireZero(r.size, "DEVICE_GET_REGION_INFO size");
    requireZero(r.offset, "DEVICE_GET_REGION_INFO offset");
    return { argsz: r.argsz, index: r.index };
  },
  /** Encodes a request. */
  encodeRequest(req: RegionInfoRequest): Uint8Array {
    return INFO.encode({ ...req, flags: 0, capOffset: 0, size: 0n, offset: 0n });
  },
  /** Size of the full reply payload for `info` (what `argsz` will say). */
  replySize(info: RegionInfo): number {
    return fullSize(info);
  },
  /**
   * Whether the full reply fits in the client's `argsz`. When it does not, `encodeReply` sends
   * the struct alone; the handler should then attach no mmap fd (the client will retry).
   */
  replyFits(info: RegionInfo, argsz: number): boolean {
    return fullSize(info) <= argsz;
  },
  /**
   * Encodes a reply that never exceeds `maxArgsz` (the request's argsz). With the capabilities
   * fitting, CAPS is set and cap_offset = 32. Without capabilities, or when they do not fit, the
   * reply is the 32-byte struct with CAPS clear and cap_offset 0; in the second case argsz
   * carries the size needed. (The kernel sets CAPS with cap_offset 0 there, but QEMU rejects a
   * CAPS reply whose cap_offset is below 32 instead of retrying.)
   */
  encodeReply(info: RegionInfo, maxArgsz: number): Uint8Array {
    const need = fullSize(info);
    const withCaps = info.caps.length > 0 && need <= maxArgsz;
    const flags = withCaps ? info.flags | RegionInfoFlags.CAPS : info.flags & ~RegionInfoFlags.CAPS;
    const out = INFO.encode(
      { ...info, argsz: need, flags: flags >>> 0, capOffset: withCaps ? SIZE : 0 },
      new Uint8Array(withCaps ? need - SIZE : 0),
    );
    if (withCaps) {
      let off = SIZE;
      info.caps.forEach((cap, i) => {
        const next = off + CAP_HEADER + align8(cap.data.length);
        CAP.write(out, { ...cap, next: i === info.caps.length - 1 ? 0 : next }, off);
        out.set(cap.data, off + CAP_HEADER);
        off = next;
      });
    }
    return out;
  },
  /**
   * Decodes a reply. A full reply has argsz == payload length and, with CAPS, a forward-only
   * chain inside the payload. A cut reply (argsz > payload) is the bare struct with no caps.
   */
  decodeReply(payload: Uint8Array): RegionInfoReply {
    const base = INFO.decodeHead(payload, "DEVICE_GET_REGION_INFO reply");
    const { argsz, flags, capOffset } = base;
    requireArgsz(argsz, SIZE, "DEVICE_GET_REGION_INFO reply");
    requireFlags(flags, KNOWN_FLAGS, "DEVICE_GET_REGION_INFO flags");
    const cut = argsz > payload.length;
    if (cut) requireExact(payload, SIZE, "DEVICE_GET_REGION_INFO cut reply");
    else requireExact(payload, argsz, "DEVICE_GET_REGION_INFO reply");
    if (cut || (flags & RegionInfoFlags.CAPS) === 0) {
      requireZero(capOffset, "DEVICE_GET_REGION_INFO cap_offset without caps");
      requireExact(payload, SIZE, "DEVICE_GET_REGION_INFO reply without caps");
      return { ...base, caps: [] };
    }
    return { ...base, caps: decodeChain(payload, capOffset) };
  },
} as const;
