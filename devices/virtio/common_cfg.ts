/**
 * The common configuration structure (virtio 1.x §4.1.4.3) as a register table over
 * {@link TransportState}. Side effects that concern the whole device (status changes, queue
 * enable) go to {@link CommonCfgHooks}.
 *
 * @module
 */
import { CommonCfg as CC, MAX_QUEUE_SIZE, NO_VECTOR, Status } from "../../spec/virtio.ts";
import { type Register, register, RegisterFile } from "../common/regs.ts";
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
  ): Register =>
    register(
      name,
      offset,
      width,
      () => (s.selected ? get(s.selected) : 0),
      set && ((v) => s.selected && set(s.selected, v)),
    );
  /**
   * A 64-bit queue address as its low and high halves; frozen once the queue is enabled
   * (§4.1.4.3.2).
   */
  const addr = (name: string, offset: number, key: AddrKey) =>
    [false, true].map((high) => {
      const get = (q: QueueState) => window(q[key], high ? 1 : 0);
      const set = (q: QueueState, v: number) => {
        if (!q.enabled) q[key] = setHalf(q[key], high, v);
      };
      return queueReg(`${name}_${high ? "hi" : "lo"}`, offset + (high ? 4 : 0), 4, get, set);
    });
  /** The 32 feature bits device_feature_select shows of what the device offers. */
  const offered = () => window(h.offered, s.deviceFeatureSelect);
  /** The 32 bits driver_feature_select shows of the driver's features; fixed at FEATURES_OK. */
  const accepted = () => window(s.driverFeatures, s.driverFeatureSelect);
  const accept = (v: number) => {
    if (s.status & Status.FEATURES_OK) return;
    s.driverFeatures = setWindow(s.driverFeatures, s.driverFeatureSelect, v);
  };
  /** A register that is a field of the transport state. */
  const field = (
    name: string,
    offset: number,
    width: 2 | 4,
    key: "deviceFeatureSelect" | "driverFeatureSelect" | "queueSelect",
  ) => register(name, offset, width, () => s[key], (v) => (s[key] = v));
  const regs: Register[] = [
    field("device_feature_select", CC.DEVICE_FEATURE_SELECT, 4, "deviceFeatureSelect"),
    register("device_feature", CC.DEVICE_FEATURE, 4, offered),
    field("driver_feature_select", CC.DRIVER_FEATURE_SELECT, 4, "driverFeatureSelect"),
    register("driver_feature", CC.DRIVER_FEATURE, 4, accepted, accept),
    register("config_msix_vector", CC.CONFIG_MSIX_VECTOR, 2, () => s.configMsixVector, (v) => {
      s.configMsixVector = vector(v);
    }),
    register("num_queues", CC.NUM_QUEUES, 2, () => s.queues.length),
    register("device_status", CC.DEVICE_STATUS, 1, () => s.status, (v) => h.writeStatus(v)),
    register("config_generation", CC.CONFIG_GENERATION, 1, () => s.configGeneration & 0xff),
    field("queue_select", CC.QUEUE_SELECT, 2, "queueSelect"),
    queueReg("queue_size", CC.QUEUE_SIZE, 2, (q) => q.size, (q, v) => {
      if (!q.enabled && isPowerOfTwo(v) && v <= Math.min(q.maxSize, MAX_QUEUE_SIZE)) q.size = v;
    }),
    queueReg("queue_msix_vector", CC.QUEUE_MSIX_VECTOR, 2, (q) => q.msixVector, (q, v) => {
      q.msixVector = vector(v);
    }),
    queueReg("queue_enable", CC.QUEUE_ENABLE, 2, (q) => (q.enabled ? 1 : 0), (_q, v) => {
      if (v === 1) h.enableQueue(s.queueSelect);
    }),
    queueReg("queue_notify_off", CC.QUEUE_NOTIFY_OFF, 2, () => s.queueSelect),
    ...addr("queue_desc", CC.QUEUE_DESC, "desc"),
    ...addr("queue_driver", CC.QUEUE_DRIVER, "driver"),
    ...addr("queue_device", CC.QUEUE_DEVICE, "device"),
    // 0x38 queue_notif_config_data, 0x3a queue_reset, 0x3c admin_queue_index and 0x3e
    // admin_queue_num read as 0: NOTIF_CONFIG_DATA, RING_RESET and ADMIN_VQ are not offered.
  ];
  return new RegisterFile(regs);
}
