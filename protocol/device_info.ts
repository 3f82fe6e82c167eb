/**
 * DEVICE_GET_INFO (4) and DEVICE_RESET (13) payloads
 * (spec, "VFIO_USER_DEVICE_GET_INFO", "VFIO_USER_DEVICE_RESET").
 *
 * @module
 */
import { NoPayload } from "./message.ts";
import { requireArgsz, requireFlags, requireZero, struct } from "./wire.ts";

/** Device flags (spec, "VFIO_USER_DEVICE_GET_INFO" reply: bit 0 RESET, bit 1 PCI). */
export const DeviceInfoFlags = {
  RESET: 1,
  PCI: 2,
} as const;

/** A DEVICE_GET_INFO request: only `argsz` may be non-zero. */
export interface DeviceInfoRequest {
  /** Largest reply payload the client accepts (>= 16). */
  argsz: number;
}

/** The device facts a DEVICE_GET_INFO reply carries. */
export interface DeviceInfo {
  /** `DeviceInfoFlags` bits. */
  flags: number;
  /** Number of regions (>= 9 for a PCI device). */
  numRegions: number;
  /** Number of IRQ types (>= 5 for a PCI device). */
  numIrqs: number;
}

/** A decoded DEVICE_GET_INFO reply. */
export interface DeviceInfoReply extends DeviceInfo {
  /** Size the full reply needs (16 today). */
  argsz: number;
}

const INFO = struct({ argsz: "u32", flags: "u32", numRegions: "u32", numIrqs: "u32" });
const SIZE = INFO.SIZE;

/** DEVICE_GET_INFO: argsz, flags, num_regions, num_irqs (u32 each), both ways. */
export const DeviceGetInfo = {
  /** Request and reply payload size. */
  SIZE,
  /** Decodes a request: argsz >= 16; flags, num_regions and num_irqs must be zero. */
  decodeRequest(payload: Uint8Array): DeviceInfoRequest {
    const r = INFO.decode(payload, "DEVICE_GET_INFO");
    requireArgsz(r.argsz, SIZE, "DEVICE_GET_INFO");
    requireZero(r.flags, "DEVICE_GET_INFO flags");
    requireZero(r.numRegions, "DEVICE_GET_INFO num_regions");
    requireZero(r.numIrqs, "DEVICE_GET_INFO num_irqs");
    return { argsz: r.argsz };
  },
  /** Encodes a request. */
  encodeRequest(req: DeviceInfoRequest): Uint8Array {
    return INFO.encode({ argsz: req.argsz, flags: 0, numRegions: 0, numIrqs: 0 });
  },
  /** Decodes a reply: argsz >= 16, no unknown flag bits. */
  decodeReply(payload: Uint8Array): DeviceInfoReply {
    const r = INFO.decode(payload, "DEVICE_GET_INFO reply");
    requireArgsz(r.argsz, SIZE, "DEVICE_GET_INFO reply");
    requireFlags(r.flags, DeviceInfoFlags.RESET | DeviceInfoFlags.PCI, "DEVICE_GET_INFO flags");
    return r;
  },
  /** Encodes a reply (argsz = 16). */
  encodeReply(info: DeviceInfo): Uint8Array {
    return INFO.encode({ ...info, argsz: SIZE });
  },
} as const;

/** DEVICE_RESET: neither request nor reply has a payload. */
export const DeviceReset = {
  /** Payload size both ways. */
  SIZE: 0,
  /** Checks that the request is empty. */
  decodeRequest(payload: Uint8Array): void {
    NoPayload.decode(payload, "DEVICE_RESET");
  },
  /** The empty request payload. */
  encodeRequest(): Uint8Array {
    return NoPayload.encode();
  },
  /** Checks that the reply is empty. */
  decodeReply(payload: Uint8Array): void {
    NoPayload.decode(payload, "DEVICE_RESET reply");
  },
  /** The empty reply payload. */
  encodeReply(): Uint8Array {
    return NoPayload.encode();
  },
} as const;
