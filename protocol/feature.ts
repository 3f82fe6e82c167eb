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
  requireNoWrap,
  requireZero,
  struct,
  U32_MAX,
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
const HEAD = struct({ argsz: "u32", flags: "u32" });

function decodeFeature(payload: Uint8Array, what: string): FeatureMessage {
  const { argsz, flags } = HEAD.decodeHead(payload, what);
  requireArgsz(argsz, HEAD.SIZE, what);
  requireFlags(flags, FeatureFlags.MASK | OPS, `${what} flags`);
  const ops = flags & OPS;
  if (ops === 0) throw new VfioUserError(Errno.EINVAL, `${what}: none of GET, SET, PROBE`);
  if ((ops & FeatureFlags.PROBE) === 0 && ops === (FeatureFlags.GET | FeatureFlags.SET)) {
    throw new VfioUserError(Errno.EINVAL, `${what}: GET and SET together without PROBE`);
  }
  return { argsz, feature: flags & FeatureFlags.MASK, ops, data: payload.subarray(HEAD.SIZE) };
}

function encodeFeature(m: FeatureMessage): Uint8Array {
  checkUint(m.feature, FeatureFlags.MASK, "feature");
  if ((m.ops & ~OPS) !== 0) throw new RangeError(`DEVICE_FEATURE: bad ops 0x${m.ops.toString(16)}`);
  return HEAD.encode({ argsz: m.argsz, flags: (m.feature | m.ops) >>> 0 }, m.data);
}

/**
 * DEVICE_FEATURE: argsz u32, flags u32, data. The reply echoes the request for SET and PROBE;
 * for GET it carries the feature data and argsz = 8 + data length.
 */
export const DeviceFeature = {
  /** Fixed part of request and reply. */
  SIZE: HEAD.SIZE,
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
    return encodeFeature({ ...reply, argsz: reply.argsz ?? HEAD.SIZE + reply.data.length });
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

const MIGRATION = struct({ flags: "u64" });

/** Feature 1 MIGRATION: the GET reply data is flags u64 (the request has no data). */
export const MigrationFeature = {
  /** Data size. */
  SIZE: MIGRATION.SIZE,
  /** Decodes GET reply data: known bits only, STOP_COPY set. */
  decode(data: Uint8Array): MigrationInfo {
    const raw = MIGRATION.decode(data, "MIGRATION data").flags;
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
    return MIGRATION.encode({ flags: BigInt(info.flags) });
  },
} as const;

/** Data of MIG_DEVICE_STATE (SET request, GET reply). */
export interface MigDeviceState {
  /** `DeviceState`. */
  deviceState: number;
  /** Unused in vfio-user (migration data goes through MIG_DATA_*); carried verbatim. */
  dataFd: number;
}

const DEVICE_STATE = struct({ deviceState: "u32", dataFd: "u32" });

/** Feature 2 MIG_DEVICE_STATE: device_state u32, data_fd u32. */
export const MigDeviceStateFeature = {
  /** Data size. */
  SIZE: DEVICE_STATE.SIZE,
  /** Decodes the data; device_state must be a defined state (0-7). */
  decode(data: Uint8Array): MigDeviceState {
    const s = DEVICE_STATE.decode(data, "MIG_DEVICE_STATE data");
    if (s.deviceState > DeviceState.PRE_COPY_P2P) {
      throw new VfioUserError(Errno.EINVAL, `MIG_DEVICE_STATE: unknown state ${s.deviceState}`);
    }
    return s;
  },
  /** Encodes the data. */
  encode: DEVICE_STATE.encode,
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

const CONTROL = struct({ pageSize: "u64", numRanges: "u32", reserved: "u32" });
const RANGE = struct({ iova: "u64", length: "u64" });

/**
 * Features 6/7 DMA_LOGGING_START/STOP: page_size u64, num_ranges u32, reserved u32, then
 * num_ranges × {iova u64, length u64}. STOP may come with no data at all: the handler should
 * accept an empty `data` before calling `decode`.
 */
export const DmaLoggingControlFeature = {
  /** Fixed part size. */
  SIZE: CONTROL.SIZE,
  /** Size of one range. */
  RANGE_SIZE: RANGE.SIZE,
  /** Decodes the data: reserved zero, exactly num_ranges ranges, none wrapping. */
  decode(data: Uint8Array): DmaLoggingControl {
    const { pageSize, numRanges: n, reserved } = CONTROL.decodeHead(data, "DMA_LOGGING data");
    requireZero(reserved, "DMA_LOGGING reserved");
    requireExact(data, CONTROL.SIZE + RANGE.SIZE * n, `DMA_LOGGING data (${n} ranges)`);
    const ranges = RANGE.readArray(data, CONTROL.SIZE, n);
    for (const r of ranges) requireNoWrap(r.iova, r.length, "DMA_LOGGING range");
    return { pageSize, ranges };
  },
  /** Encodes the data. */
  encode(c: DmaLoggingControl): Uint8Array {
    const n = c.ranges.length;
    const head = { pageSize: c.pageSize, numRanges: n, reserved: 0 };
    const out = CONTROL.encode(head, new Uint8Array(RANGE.SIZE * n));
    RANGE.writeArray(out, c.ranges, CONTROL.SIZE);
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

const REPORT = struct({ iova: "u64", length: "u64", pageSize: "u64" });

function decodeReportHead(data: Uint8Array, what: string): DmaLoggingReportRequest {
  const r = REPORT.decodeHead(data, what);
  if (r.pageSize === 0n || (r.pageSize & (r.pageSize - 1n)) !== 0n) {
    throw new VfioUserError(Errno.EINVAL, `${what}: page_size ${r.pageSize} not a power of two`);
  }
  requireNoWrap(r.iova, r.length, `${what} range`);
  return r;
}

/** Feature 8 DMA_LOGGING_REPORT (GET): iova u64, length u64, page_size u64; reply + bitmap. */
export const DmaLoggingReportFeature = {
  /** Request data size and fixed part of the reply data. */
  SIZE: REPORT.SIZE,
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
    requireExact(data, REPORT.SIZE, "DMA_LOGGING_REPORT data");
    return decodeReportHead(data, "DMA_LOGGING_REPORT");
  },
  /** Encodes request data. */
  encodeRequest: REPORT.encode,
  /** Decodes reply data; the bitmap must have exactly `bitmapSize` bytes. */
  decodeReply(data: Uint8Array): DmaLoggingReportReply {
    const head = decodeReportHead(data, "DMA_LOGGING_REPORT reply");
    const size = DmaLoggingReportFeature.bitmapSize(head.length, head.pageSize);
    requireExact(data, REPORT.SIZE + size, "DMA_LOGGING_REPORT reply bitmap");
    return { ...head, bitmap: data.subarray(REPORT.SIZE) };
  },
  /** Encodes reply data; throws `RangeError` when the bitmap has the wrong size. */
  encodeReply(reply: DmaLoggingReportReply): Uint8Array {
    const size = DmaLoggingReportFeature.bitmapSize(reply.length, reply.pageSize);
    if (reply.bitmap.length !== size) {
      throw new RangeError(`dirty bitmap has ${reply.bitmap.length} bytes, needs ${size}`);
    }
    return REPORT.encode(reply, reply.bitmap);
  },
} as const;
