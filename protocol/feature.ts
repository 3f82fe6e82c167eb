/**
 * DEVICE_FEATURE (16) and the payloads of the migration-related features (spec,
 * "VFIO_USER_DEVICE_FEATURE", "Device Features", "VFIO_DEVICE_FEATURE_MIGRATION",
 * "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE", "VFIO_DEVICE_FEATURE_DMA_LOGGING_START / STOP",
 * "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT"). MIG_DATA_READ/WRITE are in mig_data.ts.
 *
 * `DeviceFeature` frames the message (argsz, flags, data); the per-feature namespaces decode and
 * encode the `data` part. Decoded `data` fields are views into the input buffer.
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import {
  checkUint,
  requireArgsz,
  requireExact,
  requireFlags,
  requireMin,
  requireNoWrap,
  requireZero,
  setU32,
  setU64,
  U32_MAX,
  viewOf,
} from "./wire.ts";

/** DEVICE_FEATURE flag layout: bits 0-15 feature index, then the GET/SET/PROBE operations. */
export const FeatureFlags = {
  /** Feature-index bits. */
  MASK: 0xffff,
  GET: 1 << 16,
  SET: 1 << 17,
  PROBE: 1 << 18,
} as const;

/** Feature indexes vfio-user supports (spec, "Device Features"). */
export const Feature = {
  MIGRATION: 1,
  MIG_DEVICE_STATE: 2,
  DMA_LOGGING_START: 6,
  DMA_LOGGING_STOP: 7,
  DMA_LOGGING_REPORT: 8,
} as const;

/** Whether `feature` is one of the spec's feature indexes. */
export function isKnownFeature(feature: number): boolean {
  return (Object.values(Feature) as number[]).includes(feature);
}

/** A DEVICE_FEATURE request or reply. */
export interface FeatureMessage {
  /** Request: largest reply payload accepted. Reply: size of the full reply payload. */
  argsz: number;
  /** Feature index (flags bits 0-15). */
  feature: number;
  /** `FeatureFlags.GET | SET | PROBE` bits. */
  ops: number;
  /** Feature-specific data (may be empty). */
  data: Uint8Array;
}

/** Fields of a reply to encode; `argsz` defaults to 8 + data.length (right for GET). */
export type FeatureReplyFields = Omit<FeatureMessage, "argsz"> & { argsz?: number };

const OPS = FeatureFlags.GET | FeatureFlags.SET | FeatureFlags.PROBE;

function decodeFeature(payload: Uint8Array, what: string): FeatureMessage {
  requireMin(payload, 8, what);
  const v = viewOf(payload);
  const argsz = v.getUint32(0, true);
  requireArgsz(argsz, 8, what);
  const flags = v.getUint32(4, true);
  requireFlags(flags, FeatureFlags.MASK | OPS, `${what} flags`);
  const ops = flags & OPS;
  if (ops === 0) throw new VfioUserError(Errno.EINVAL, `${what}: none of GET, SET, PROBE`);
  if ((ops & FeatureFlags.PROBE) === 0 && ops === (FeatureFlags.GET | FeatureFlags.SET)) {
    throw new VfioUserError(Errno.EINVAL, `${what}: GET and SET together without PROBE`);
  }
  return { argsz, feature: flags & FeatureFlags.MASK, ops, data: payload.subarray(8) };
}

function encodeFeature(m: FeatureMessage): Uint8Array {
  const out = new Uint8Array(8 + m.data.length);
  const v = viewOf(out);
  setU32(v, 0, m.argsz, "argsz");
  checkUint(m.feature, FeatureFlags.MASK, "feature");
  if ((m.ops & ~OPS) !== 0) throw new RangeError(`DEVICE_FEATURE: bad ops 0x${m.ops.toString(16)}`);
  setU32(v, 4, (m.feature | m.ops) >>> 0, "flags");
  out.set(m.data, 8);
  return out;
}

/**
 * DEVICE_FEATURE: argsz u32, flags u32, data. The reply echoes the request for SET and PROBE;
 * for GET it carries the feature data and argsz = 8 + data length.
 */
export const DeviceFeature = {
  /** Fixed part of request and reply. */
  SIZE: 8,
  /**
   * Decodes a request: argsz >= 8, no flag bits above PROBE, at least one operation, GET and
   * SET only together with PROBE. Without GET the reply echoes the request, so argsz must be
   * at least the payload length. For GET, the handler compares argsz with its reply size.
   */
  decodeRequest(payload: Uint8Array): FeatureMessage {
    const m = decodeFeature(payload, "DEVICE_FEATURE");
    if ((m.ops & FeatureFlags.GET) === 0 && m.argsz < payload.length) {
      throw new VfioUserError(
        Errno.EINVAL,
        `DEVICE_FEATURE: argsz ${m.argsz} < ${payload.length}, the echoed reply would not fit`,
      );
    }
    return m;
  },
  /** Encodes a request. */
  encodeRequest(req: FeatureMessage): Uint8Array {
    return encodeFeature(req);
  },
  /** Decodes a reply; a GET (non-probe) reply must have argsz == payload length. */
  decodeReply(payload: Uint8Array): FeatureMessage {
    const m = decodeFeature(payload, "DEVICE_FEATURE reply");
    if (m.ops === FeatureFlags.GET) requireExact(payload, m.argsz, "DEVICE_FEATURE GET reply");
    return m;
  },
  /** Encodes a reply. */
  encodeReply(reply: FeatureReplyFields): Uint8Array {
    return encodeFeature({ ...reply, argsz: reply.argsz ?? 8 + reply.data.length });
  },
} as const;

/** VFIO_DEVICE_FEATURE_MIGRATION flags (u64 on the wire; only bits 0-2 defined). */
export const MigrationFlags = {
  STOP_COPY: 1,
  P2P: 2,
  PRE_COPY: 4,
} as const;

/** Migration states (`enum vfio_device_mig_state`). */
export const DeviceState = {
  ERROR: 0,
  STOP: 1,
  RUNNING: 2,
  STOP_COPY: 3,
  RESUMING: 4,
  RUNNING_P2P: 5,
  PRE_COPY: 6,
  PRE_COPY_P2P: 7,
} as const;

/** Data of a MIGRATION GET reply. */
export interface MigrationInfo {
  /** `MigrationFlags` bits; STOP_COPY is mandatory. */
  flags: number;
}

/** Feature 1 MIGRATION: the GET reply data is flags u64 (the request has no data). */
export const MigrationFeature = {
  /** Data size. */
  SIZE: 8,
  /** Decodes GET reply data: known bits only, STOP_COPY set. */
  decode(data: Uint8Array): MigrationInfo {
    requireExact(data, 8, "MIGRATION data");
    const raw = viewOf(data).getBigUint64(0, true);
    const known = BigInt(MigrationFlags.STOP_COPY | MigrationFlags.P2P | MigrationFlags.PRE_COPY);
    if ((raw & ~known) !== 0n) {
      throw new VfioUserError(
        Errno.EINVAL,
        `MIGRATION flags: unknown bits in 0x${raw.toString(16)}`,
      );
    }
    if ((raw & 1n) === 0n) throw new VfioUserError(Errno.EINVAL, "MIGRATION flags lack STOP_COPY");
    return { flags: Number(raw) };
  },
  /** Encodes GET reply data. */
  encode(info: MigrationInfo): Uint8Array {
    const out = new Uint8Array(8);
    setU64(viewOf(out), 0, BigInt(info.flags), "migration flags");
    return out;
  },
} as const;

/** Data of MIG_DEVICE_STATE (SET request, GET reply). */
export interface MigDeviceState {
  /** `DeviceState`. */
  deviceState: number;
  /** Unused in vfio-user (migration data goes through MIG_DATA_*); carried verbatim. */
  dataFd: number;
}

/** Feature 2 MIG_DEVICE_STATE: device_state u32, data_fd u32. */
export const MigDeviceStateFeature = {
  /** Data size. */
  SIZE: 8,
  /** Decodes the data; device_state must be a defined state (0-7). */
  decode(data: Uint8Array): MigDeviceState {
    requireExact(data, 8, "MIG_DEVICE_STATE data");
    const v = viewOf(data);
    const deviceState = v.getUint32(0, true);
    if (deviceState > DeviceState.PRE_COPY_P2P) {
      throw new VfioUserError(Errno.EINVAL, `MIG_DEVICE_STATE: unknown state ${deviceState}`);
    }
    return { deviceState, dataFd: v.getUint32(4, true) };
  },
  /** Encodes the data. */
  encode(s: MigDeviceState): Uint8Array {
    const out = new Uint8Array(8);
    const v = viewOf(out);
    setU32(v, 0, s.deviceState, "device_state");
    setU32(v, 4, s.dataFd, "data_fd");
    return out;
  },
} as const;

/** An IOVA range for dirty logging. */
export interface DmaRange {
  /** Base IO virtual address. */
  iova: bigint;
  /** Length in bytes. */
  length: bigint;
}

/** Data of DMA_LOGGING_START (and STOP, when a client sends any). */
export interface DmaLoggingControl {
  /** Tracking granularity hint; the reply may carry the one chosen. */
  pageSize: bigint;
  /** Ranges to log; empty = log all writes. */
  ranges: DmaRange[];
}

/**
 * Features 6/7 DMA_LOGGING_START/STOP: page_size u64, num_ranges u32, reserved u32, then
 * num_ranges × {iova u64, length u64}. STOP may come with no data at all: the handler should
 * accept an empty `data` before calling `decode`.
 */
export const DmaLoggingControlFeature = {
  /** Fixed part size. */
  SIZE: 16,
  /** Size of one range. */
  RANGE_SIZE: 16,
  /** Decodes the data: reserved zero, exactly num_ranges ranges, none wrapping. */
  decode(data: Uint8Array): DmaLoggingControl {
    requireMin(data, 16, "DMA_LOGGING data");
    const v = viewOf(data);
    const n = v.getUint32(8, true);
    requireZero(v.getUint32(12, true), "DMA_LOGGING reserved");
    requireExact(data, 16 + 16 * n, `DMA_LOGGING data (${n} ranges)`);
    const ranges: DmaRange[] = [];
    for (let i = 0; i < n; i++) {
      const r = {
        iova: v.getBigUint64(16 + 16 * i, true),
        length: v.getBigUint64(24 + 16 * i, true),
      };
      requireNoWrap(r.iova, r.length, "DMA_LOGGING range");
      ranges.push(r);
    }
    return { pageSize: v.getBigUint64(0, true), ranges };
  },
  /** Encodes the data. */
  encode(c: DmaLoggingControl): Uint8Array {
    const out = new Uint8Array(16 + 16 * c.ranges.length);
    const v = viewOf(out);
    setU64(v, 0, c.pageSize, "page_size");
    setU32(v, 8, c.ranges.length, "num_ranges");
    c.ranges.forEach((r, i) => {
      setU64(v, 16 + 16 * i, r.iova, "iova");
      setU64(v, 24 + 16 * i, r.length, "length");
    });
    return out;
  },
} as const;

/** A DMA_LOGGING_REPORT request: which range, at which granularity. */
export interface DmaLoggingReportRequest {
  /** Base IO virtual address. */
  iova: bigint;
  /** Length in bytes. */
  length: bigint;
  /** Bytes per bitmap bit; a power of two. */
  pageSize: bigint;
}

/** A DMA_LOGGING_REPORT reply: the request echoed plus the bitmap. */
export interface DmaLoggingReportReply extends DmaLoggingReportRequest {
  /** u64 words, little-endian; bit n = page n of the range (byte n/8, bit n%8). */
  bitmap: Uint8Array;
}

function decodeReportHead(data: Uint8Array, what: string): DmaLoggingReportRequest {
  requireMin(data, 24, what);
  const v = viewOf(data);
  const r = {
    iova: v.getBigUint64(0, true),
    length: v.getBigUint64(8, true),
    pageSize: v.getBigUint64(16, true),
  };
  if (r.pageSize === 0n || (r.pageSize & (r.pageSize - 1n)) !== 0n) {
    throw new VfioUserError(Errno.EINVAL, `${what}: page_size ${r.pageSize} not a power of two`);
  }
  requireNoWrap(r.iova, r.length, `${what} range`);
  return r;
}

function encodeReportHead(r: DmaLoggingReportRequest, extra: number): Uint8Array {
  const out = new Uint8Array(24 + extra);
  const v = viewOf(out);
  setU64(v, 0, r.iova, "iova");
  setU64(v, 8, r.length, "length");
  setU64(v, 16, r.pageSize, "page_size");
  return out;
}

/** Feature 8 DMA_LOGGING_REPORT (GET): iova u64, length u64, page_size u64; reply + bitmap. */
export const DmaLoggingReportFeature = {
  /** Request data size and fixed part of the reply data. */
  SIZE: 24,
  /**
   * Bytes of bitmap for a range: one bit per page, rounded up to whole u64 words. Throws
   * `VfioUserError(E2BIG)` above 4 GiB, which no message could carry.
   */
  bitmapSize(length: bigint, pageSize: bigint): number {
    if (pageSize <= 0n) throw new RangeError(`page size ${pageSize} must be positive`);
    const pages = (length + pageSize - 1n) / pageSize;
    const bytes = ((pages + 63n) / 64n) * 8n;
    if (bytes > BigInt(U32_MAX)) {
      throw new VfioUserError(Errno.E2BIG, `dirty bitmap of ${bytes} bytes is too large`);
    }
    return Number(bytes);
  },
  /** Decodes request data: page_size a power of two, range not wrapping. */
  decodeRequest(data: Uint8Array): DmaLoggingReportRequest {
    requireExact(data, 24, "DMA_LOGGING_REPORT data");
    return decodeReportHead(data, "DMA_LOGGING_REPORT");
  },
  /** Encodes request data. */
  encodeRequest(req: DmaLoggingReportRequest): Uint8Array {
    return encodeReportHead(req, 0);
  },
  /** Decodes reply data; the bitmap must have exactly `bitmapSize` bytes. */
  decodeReply(data: Uint8Array): DmaLoggingReportReply {
    const head = decodeReportHead(data, "DMA_LOGGING_REPORT reply");
    const size = DmaLoggingReportFeature.bitmapSize(head.length, head.pageSize);
    requireExact(data, 24 + size, "DMA_LOGGING_REPORT reply bitmap");
    return { ...head, bitmap: data.subarray(24) };
  },
  /** Encodes reply data; throws `RangeError` when the bitmap has the wrong size. */
  encodeReply(reply: DmaLoggingReportReply): Uint8Array {
    const size = DmaLoggingReportFeature.bitmapSize(reply.length, reply.pageSize);
    if (reply.bitmap.length !== size) {
      throw new RangeError(`dirty bitmap has ${reply.bitmap.length} bytes, needs ${size}`);
    }
    const out = encodeReportHead(reply, size);
    out.set(reply.bitmap, 24);
    return out;
  },
} as const;
