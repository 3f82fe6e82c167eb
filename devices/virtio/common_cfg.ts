/**
 * The common configuration structure (virtio 1.x §4.1.4.3) as a register table over
 * {@link TransportState}. Side effects that concern the whole device (status changes, queue
 * enable) go to {@link CommonCfgHooks}.
 *
 * @module
 */
import { MAX_QUEUE_SIZE, NO_VECTOR, Status } from "./constants.ts";
import { type Register, RegisterFile } from "../common/regs.ts";
import type { QueueState, TransportState } from "./state.ts";

/** Transport actions triggered by common-configuration writes. */
export interface CommonCfgHooks {
  /** Every feature bit the device offers. */
  readonly offered: bigint;
  /** Number of MSI-X vectors. */
  readonly numVectors: number;
  /** device_status write (§2.1, §4.1.4.3.1: 0 resets). */
  writeStatus(value: number): void;
  /** queue_enable write of 1 for the selected queue. */
  enableQueue(index: number): void;
}

/** 32-bit window `sel` of a 64-bit feature set (§4.1.4.3: device_feature_select). */
function window(features: bigint, sel: number): number {
  if (sel > 1) return 0;
  return Number((features >> BigInt(32 * sel)) & 0xffffffffn);
}

function setWindow(features: bigint, sel: number, value: number): bigint {
  if (sel > 1) return features;
  const shift = BigInt(32 * sel);
  return (features & ~(0xffffffffn << shift)) | (BigInt(value) << shift);
}

function setHalf(addr: bigint, high: boolean, value: number): bigint {
  return high
    ? (addr & 0xffffffffn) | (BigInt(value) << 32n)
    : (addr & ~0xffffffffn) | BigInt(value);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

type AddrKey = "desc" | "driver" | "device";

/** Builds the register file; `s.selected` decides which queue the queue_* registers show. */
export function commonConfig(s: TransportState, h: CommonCfgHooks): RegisterFile {
  const vector = (v: number) => (v < h.numVectors ? v : NO_VECTOR);
  /** A queue_* register: reads 0 / ignores writes when queue_select is out of range. */
  const queueReg = (
    name: string,
    offset: number,
    width: 2 | 4,
    get: (q: QueueState) => number,
    set?: (q: QueueState, v: number) => void,
  ): Register => ({
    name,
    offset,
    width,
    read: () => (s.selected ? get(s.selected) : 0),
    write: set && ((v) => s.selected && set(s.selected, v)),
  });
  /** Queue layout registers are frozen once the queue is enabled (§4.1.4.3.2). */
  const addrHalf = (name: string, offset: number, key: AddrKey, high: boolean) =>
    queueReg(name, offset, 4, (q) => window(q[key], high ? 1 : 0), (q, v) => {
      if (!q.enabled) q[key] = setHalf(q[key], high, v);
    });
  const featuresLocked = () => (s.status & Status.FEATURES_OK) !== 0;
  const regs: Register[] = [
    {
      name: "device_feature_select",
      offset: 0x00,
      width: 4,
      read: () => s.deviceFeatureSelect,
      write: (v) => (s.deviceFeatureSelect = v),
    },
    {
      name: "device_feature",
      offset: 0x04,
      width: 4,
      read: () => window(h.offered, s.deviceFeatureSelect),
    },
    {
      name: "driver_feature_select",
      offset: 0x08,
      width: 4,
      read: () => s.driverFeatureSelect,
      write: (v) => (s.driverFeatureSelect = v),
    },
    {
      name: "driver_feature",
      offset: 0x0c,
      width: 4,
      read: () => window(s.driverFeatures, s.driverFeatureSelect),
      write: (v) => {
        if (!featuresLocked()) {
          s.driverFeatures = setWindow(s.driverFeatures, s.driverFeatureSelect, v);
        }
      },
    },
    {
      name: "config_msix_vector",
      offset: 0x10,
      width: 2,
      read: () => s.configMsixVector,
      write: (v) => (s.configMsixVector = vector(v)),
    },
    { name: "num_queues", offset: 0x12, width: 2, read: () => s.queues.length },
    {
      name: "device_status",
      offset: 0x14,
      width: 1,
      read: () => s.status,
      write: (v) => h.writeStatus(v),
    },
    { name: "config_generation", offset: 0x15, width: 1, read: () => s.configGeneration & 0xff },
    {
      name: "queue_select",
      offset: 0x16,
      width: 2,
      read: () => s.queueSelect,
      write: (v) => (s.queueSelect = v),
    },
    queueReg("queue_size", 0x18, 2, (q) => q.size, (q, v) => {
      if (!q.enabled && isPowerOfTwo(v) && v <= Math.min(q.maxSize, MAX_QUEUE_SIZE)) q.size = v;
    }),
    queueReg("queue_msix_vector", 0x1a, 2, (q) => q.msixVector, (q, v) => {
      q.msixVector = vector(v);
    }),
    queueReg("queue_enable", 0x1c, 2, (q) => (q.enabled ? 1 : 0), (_q, v) => {
      if (v === 1) h.enableQueue(s.queueSelect);
    }),
    queueReg("queue_notify_off", 0x1e, 2, () => s.queueSelect),
    addrHalf("queue_desc_lo", 0x20, "desc", false),
    addrHalf("queue_desc_hi", 0x24, "desc", true),
    addrHalf("queue_driver_lo", 0x28, "driver", false),
    addrHalf("queue_driver_hi", 0x2c, "driver", true),
    addrHalf("queue_device_lo", 0x30, "device", false),
    addrHalf("queue_device_hi", 0x34, "device", true),
    // 0x38 queue_notif_config_data, 0x3a queue_reset, 0x3c admin_queue_index and 0x3e
    // admin_queue_num read as 0: NOTIF_CONFIG_DATA, RING_RESET and ADMIN_VQ are not offered.
  ];
  return new RegisterFile(regs);
}
