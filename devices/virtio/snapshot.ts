/**
 * The saved state of a virtio PCI function (transport and virtqueues) as a plain record, and its
 * validation. What the driver configured (features, status, queue sizes, vectors and ring
 * addresses, §4.1.4.3) plus the device-side ring indices (§2.7) and the model's own record; never
 * guest memory itself, which the client migrates.
 *
 * @module
 */
import { RecordReader, type RecordValue } from "../../protocol/record.ts";
import { feature, FeatureBit, MAX_QUEUE_SIZE, NO_VECTOR, Status } from "../../spec/virtio.ts";
import type { TransportState } from "./state.ts";
import type { RingIndices } from "./virtqueue.ts";

/** Version of {@link TransportRecord} (and of the device state of every virtio device). */
export const VIRTIO_STATE_VERSION = 1;

/** One virtqueue. */
export type QueueRecord = {
  size: number;
  vector: number;
  enabled: boolean;
  desc: bigint;
  driver: bigint;
  device: bigint;
  /** Ring indices (zero while disabled). */
  lastAvail: number;
  usedIdx: number;
  signalled: number;
  signalledValid: boolean;
  /** The queue failed and stays dead until reset (DEVICE_NEEDS_RESET). */
  broken: boolean;
  /**
   * Heads taken from the avail ring whose requests were captured by a pause (their guest memory
   * access had to wait for the client): they run again, nothing of them was published.
   */
  captured: number[];
};

/** The whole function. */
export type TransportRecord = {
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  driverFeatures: bigint;
  negotiated: bigint;
  configVector: number;
  status: number;
  configGeneration: number;
  queueSelect: number;
  isr: number;
  queues: QueueRecord[];
  /** The device model's record (null when it has no state of its own). */
  model: RecordValue;
};

/** What a saved state must agree with. */
export interface TransportLimits {
  /** Features the device offers. */
  offered: bigint;
  /** MSI-X vectors. */
  numVectors: number;
  /** Maximum size of each queue. */
  queueSizes: readonly number[];
}

/** Ring bytes of a split queue of `size` (§2.7: descriptor table, avail ring, used ring). */
export function ringSizes(size: number): { desc: number; avail: number; used: number } {
  return { desc: 16 * size, avail: 6 + 2 * size, used: 6 + 8 * size };
}

/** The record of `s`; `indices(i)` gives the ring indices of enabled queue `i`. */
export function saveTransport(
  s: TransportState,
  indices: (i: number) => RingIndices | undefined,
  broken: (i: number) => boolean,
  captured: (i: number) => readonly number[],
  model: RecordValue,
): TransportRecord {
  return {
    deviceFeatureSelect: s.deviceFeatureSelect,
    driverFeatureSelect: s.driverFeatureSelect,
    driverFeatures: s.driverFeatures,
    negotiated: s.negotiated,
    configVector: s.configMsixVector,
    status: s.status,
    configGeneration: s.configGeneration,
    queueSelect: s.queueSelect,
    isr: s.isr,
    queues: s.queues.map((q, i) => {
      const idx = indices(i) ?? { lastAvail: 0, usedIdx: 0, signalled: 0, signalledValid: false };
      return {
        size: q.size,
        vector: q.msixVector,
        enabled: q.enabled,
        desc: q.desc,
        driver: q.driver,
        device: q.device,
        ...idx,
        broken: broken(i),
        captured: [...captured(i)],
      };
    }),
    model,
  };
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

function parseQueue(r: RecordReader, max: number, vector: (key: string) => number): QueueRecord {
  const q: QueueRecord = {
    size: r.uint("size", 16),
    vector: vector("vector"),
    enabled: r.bool("enabled"),
    desc: r.u64("desc"),
    driver: r.u64("driver"),
    device: r.u64("device"),
    lastAvail: r.uint("lastAvail", 16),
    usedIdx: r.uint("usedIdx", 16),
    signalled: r.uint("signalled", 16),
    signalledValid: r.bool("signalledValid"),
    broken: r.bool("broken"),
    captured: r.list("captured", MAX_QUEUE_SIZE).map((h, i) => {
      if (typeof h !== "number" || !Number.isInteger(h) || h < 0 || h > 0xffff) {
        r.fail("captured", `entry ${i} is not a descriptor index`);
      }
      return h;
    }),
  };
  r.done();
  if (q.captured.some((h) => h >= q.size)) {
    r.fail("captured", `a head beyond ${q.size} descriptors`);
  }
  if (new Set(q.captured).size !== q.captured.length) r.fail("captured", "a head twice");
  if (q.captured.length && !q.enabled) r.fail("captured", "requests of a disabled queue");
  if (!isPowerOfTwo(q.size) || q.size > Math.min(max, MAX_QUEUE_SIZE)) {
    r.fail("size", `${q.size} is not a power of two up to ${Math.min(max, MAX_QUEUE_SIZE)}`);
  }
  if (!q.enabled) return q;
  // §2.7: alignment of the three areas; none may wrap past the end of the address space.
  const sizes = ringSizes(q.size);
  for (
    const [key, align, len] of [["desc", 16n, sizes.desc], ["driver", 2n, sizes.avail], [
      "device",
      4n,
      sizes.used,
    ]] as const
  ) {
    const addr = q[key];
    if (addr % align !== 0n) r.fail(key, `0x${addr.toString(16)} is not ${align}-byte aligned`);
    if (addr + BigInt(len) > 1n << 64n) r.fail(key, "ring wraps past 2^64");
  }
  return q;
}

/**
 * Validates a saved record against this function's `limits`; throws `ErrnoError(EINVAL)`
 * naming the first bad field. The model's record is returned unchecked (the model checks it).
 */
export function parseTransport(raw: unknown, limits: TransportLimits): TransportRecord {
  const r = new RecordReader(raw, "virtio");
  const vector = (rr: RecordReader) => (key: string) => {
    const v = rr.uint(key, 16);
    if (v !== NO_VECTOR && v >= limits.numVectors) {
      rr.fail(key, `MSI-X vector ${v} out of range (${limits.numVectors} vectors)`);
    }
    return v;
  };
  const n = limits.queueSizes.length;
  const rec: TransportRecord = {
    deviceFeatureSelect: r.uint("deviceFeatureSelect", 32),
    driverFeatureSelect: r.uint("driverFeatureSelect", 32),
    driverFeatures: r.u64("driverFeatures"),
    negotiated: r.u64("negotiated"),
    configVector: vector(r)("configVector"),
    status: r.uint("status", 8),
    configGeneration: r.uint("configGeneration", 32),
    queueSelect: r.uint("queueSelect", 16),
    isr: r.uint("isr", 2),
    queues: r.recs("queues", n, true).map((q, i) => parseQueue(q, limits.queueSizes[i], vector(q))),
    model: r.any("model"),
  };
  r.done();
  if ((rec.negotiated & ~limits.offered) !== 0n) {
    r.fail("negotiated", `features 0x${rec.negotiated.toString(16)} were never offered`);
  }
  if (rec.status & Status.FEATURES_OK) {
    if ((rec.negotiated & feature(FeatureBit.VERSION_1)) === 0n) {
      r.fail("negotiated", "FEATURES_OK without VERSION_1");
    }
  } else if (rec.negotiated !== 0n) {
    r.fail("negotiated", "features in force without FEATURES_OK");
  }
  return rec;
}
