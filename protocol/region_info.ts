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
  requireMin,
  requireNoWrap,
  requireZero,
  setU16,
  setU32,
  setU64,
  viewOf,
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

/** The sparse-mmap capability (id 1, version 1): nr_areas u32, reserved u32, {offset, size}[]. */
export const SparseMmapCap = {
  /** Capability id. */
  ID: RegionCapId.SPARSE_MMAP,
  /** Capability version. */
  VERSION: 1,
  /** Fixed body size before the areas. */
  SIZE: 8,
  /** Size of one area entry. */
  AREA_SIZE: 16,
  /** Builds the capability from its areas. */
  encode(areas: readonly SparseMmapArea[]): RegionCap {
    const data = new Uint8Array(8 + 16 * areas.length);
    const v = viewOf(data);
    setU32(v, 0, areas.length, "nr_areas");
    areas.forEach((a, i) => {
      setU64(v, 8 + 16 * i, a.offset, "area offset");
      setU64(v, 16 + 16 * i, a.size, "area size");
    });
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
    requireMin(cap.data, 8, "sparse mmap capability");
    const v = viewOf(cap.data);
    const nr = v.getUint32(0, true);
    requireZero(v.getUint32(4, true), "sparse mmap reserved");
    const need = 8 + 16 * nr;
    if (need > cap.data.length || cap.data.length - need >= 8) {
      throw new VfioUserError(
        Errno.EINVAL,
        `sparse mmap: ${nr} areas need ${need} bytes, capability has ${cap.data.length}`,
      );
    }
    const areas: SparseMmapArea[] = [];
    for (let i = 0; i < nr; i++) {
      const a = {
        offset: v.getBigUint64(8 + 16 * i, true),
        size: v.getBigUint64(16 + 16 * i, true),
      };
      requireNoWrap(a.offset, a.size, "sparse mmap area");
      areas.push(a);
    }
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

/** The region-type capability, for device-specific regions (spec, "Device-Specific Regions"). */
export const TypeCap = {
  /** Capability id. */
  ID: RegionCapId.TYPE,
  /** Capability version. */
  VERSION: 1,
  /** Body size. */
  SIZE: 8,
  /** Builds the capability. */
  encode(t: RegionType): RegionCap {
    const data = new Uint8Array(8);
    const v = viewOf(data);
    setU32(v, 0, t.type, "type");
    setU32(v, 4, t.subtype, "subtype");
    return { id: RegionCapId.TYPE, version: 1, data };
  },
  /** Decodes the capability body. */
  decode(cap: RegionCap): RegionType {
    if (cap.id !== RegionCapId.TYPE || cap.version !== 1) {
      throw new VfioUserError(Errno.EINVAL, `not a type v1 capability: id ${cap.id}`);
    }
    requireExact(cap.data, 8, "type capability");
    const v = viewOf(cap.data);
    return { type: v.getUint32(0, true), subtype: v.getUint32(4, true) };
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

const SIZE = 32;
const CAP_HEADER = 8;
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
  const v = viewOf(payload);
  const caps: RegionCap[] = [];
  let off = capOffset;
  if (off < SIZE) {
    throw new VfioUserError(Errno.EINVAL, `region info: cap_offset ${off} inside the struct`);
  }
  while (off !== 0) {
    if (off + CAP_HEADER > payload.length) {
      throw new VfioUserError(Errno.EINVAL, `region info: capability at ${off} past the end`);
    }
    const next = v.getUint32(off + 4, true);
    // Offsets must move forward: this bounds the walk and rules out loops.
    if (next !== 0 && next < off + CAP_HEADER) {
      throw new VfioUserError(Errno.EINVAL, `region info: capability next ${next} goes back`);
    }
    const end = next === 0 ? payload.length : next;
    if (end > payload.length) {
      throw new VfioUserError(Errno.EINVAL, `region info: capability next ${next} past the end`);
    }
    caps.push({
      id: v.getUint16(off, true),
      version: v.getUint16(off + 2, true),
      data: payload.subarray(off + CAP_HEADER, end),
    });
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
    requireExact(payload, SIZE, "DEVICE_GET_REGION_INFO");
    const v = viewOf(payload);
    const argsz = v.getUint32(0, true);
    requireArgsz(argsz, SIZE, "DEVICE_GET_REGION_INFO");
    requireZero(v.getUint32(4, true), "DEVICE_GET_REGION_INFO flags");
    requireZero(v.getUint32(12, true), "DEVICE_GET_REGION_INFO cap_offset");
    requireZero(v.getBigUint64(16, true), "DEVICE_GET_REGION_INFO size");
    requireZero(v.getBigUint64(24, true), "DEVICE_GET_REGION_INFO offset");
    return { argsz, index: v.getUint32(8, true) };
  },
  /** Encodes a request. */
  encodeRequest(req: RegionInfoRequest): Uint8Array {
    const out = new Uint8Array(SIZE);
    const v = viewOf(out);
    setU32(v, 0, req.argsz, "argsz");
    setU32(v, 8, req.index, "index");
    return out;
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
    const out = new Uint8Array(withCaps ? need : SIZE);
    const v = viewOf(out);
    setU32(v, 0, need, "argsz");
    const flags = withCaps ? info.flags | RegionInfoFlags.CAPS : info.flags & ~RegionInfoFlags.CAPS;
    setU32(v, 4, flags >>> 0, "flags");
    setU32(v, 8, info.index, "index");
    setU32(v, 12, withCaps ? SIZE : 0, "cap_offset");
    setU64(v, 16, info.size, "size");
    setU64(v, 24, info.offset, "offset");
    if (withCaps) {
      let off = SIZE;
      info.caps.forEach((cap, i) => {
        const next = off + CAP_HEADER + align8(cap.data.length);
        setU16(v, off, cap.id, "cap id");
        setU16(v, off + 2, cap.version, "cap version");
        setU32(v, off + 4, i === info.caps.length - 1 ? 0 : next, "cap next");
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
    requireMin(payload, SIZE, "DEVICE_GET_REGION_INFO reply");
    const v = viewOf(payload);
    const argsz = v.getUint32(0, true);
    requireArgsz(argsz, SIZE, "DEVICE_GET_REGION_INFO reply");
    const flags = v.getUint32(4, true);
    requireFlags(flags, KNOWN_FLAGS, "DEVICE_GET_REGION_INFO flags");
    const capOffset = v.getUint32(12, true);
    const base = {
      argsz,
      flags,
      index: v.getUint32(8, true),
      capOffset,
      size: v.getBigUint64(16, true),
      offset: v.getBigUint64(24, true),
    };
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
