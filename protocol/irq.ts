/**
 * DEVICE_GET_IRQ_INFO (7) and DEVICE_SET_IRQS (8) payloads
 * (spec, "VFIO_USER_DEVICE_GET_IRQ_INFO", "VFIO_USER_DEVICE_SET_IRQS").
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import { NoPayload } from "./message.ts";
import {
  type IndexQuery,
  indexQueryRequest,
  IndexStruct,
  requireArgsz,
  requireExact,
  requireFlags,
  struct,
  U32_MAX,
} from "./wire.ts";

/** PCI IRQ indexes (spec/notes: 0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ). */
export const IrqIndex = {
  INTX: 0,
  MSI: 1,
  MSIX: 2,
  ERR: 3,
  REQ: 4,
} as const;

/** Number of IRQ indexes of a PCI device (DEVICE_GET_INFO num_irqs). */
export const IRQ_INDEX_COUNT = 5;

/** DEVICE_GET_IRQ_INFO reply flags (spec: EVENTFD, MASKABLE, AUTOMASKED, NORESIZE). */
export const IrqInfoFlags = {
  EVENTFD: 1,
  MASKABLE: 2,
  AUTOMASKED: 4,
  NORESIZE: 8,
} as const;

/** DEVICE_SET_IRQS flags: exactly one DATA_* and exactly one ACTION_* bit. */
export const IrqSetFlags = {
  DATA_NONE: 1,
  DATA_BOOL: 2,
  DATA_EVENTFD: 4,
  ACTION_MASK: 8,
  ACTION_UNMASK: 16,
  ACTION_TRIGGER: 32,
  /** All DATA_* bits. */
  DATA_TYPE_MASK: 7,
  /** All ACTION_* bits. */
  ACTION_TYPE_MASK: 0x38,
} as const;

/** A DEVICE_GET_IRQ_INFO request: only `argsz` and `index` may be non-zero. */
export type IrqInfoRequest = IndexQuery;

/** What the server reports about one IRQ index. */
export interface IrqInfo {
  /** `IrqInfoFlags` bits. */
  flags: number;
  /** IRQ index. */
  index: number;
  /** Number of interrupts (vectors) of that type. */
  count: number;
}

/** A decoded DEVICE_GET_IRQ_INFO reply. */
export interface IrqInfoReply extends IrqInfo {
  /** Size of the full reply (16). */
  argsz: number;
}

const INFO_SIZE = IndexStruct.SIZE;
const INFO_FLAGS = IrqInfoFlags.EVENTFD | IrqInfoFlags.MASKABLE | IrqInfoFlags.AUTOMASKED |
  IrqInfoFlags.NORESIZE;

/** DEVICE_GET_IRQ_INFO: argsz, flags, index, count (u32 each), both ways. */
export const DeviceGetIrqInfo = {
  /** Request and reply payload size. */
  SIZE: INFO_SIZE,
  ...indexQueryRequest("DEVICE_GET_IRQ_INFO"),
  /** Decodes a reply: argsz >= 16, no unknown flag bits. */
  decodeReply(payload: Uint8Array): IrqInfoReply {
    const r = IndexStruct.decode(payload, "DEVICE_GET_IRQ_INFO reply");
    requireArgsz(r.argsz, INFO_SIZE, "DEVICE_GET_IRQ_INFO reply");
    requireFlags(r.flags, INFO_FLAGS, "DEVICE_GET_IRQ_INFO flags");
    return r;
  },
  /** Encodes a reply (argsz = 16). */
  encodeReply(info: IrqInfo): Uint8Array {
    return IndexStruct.encode({ ...info, argsz: INFO_SIZE });
  },
} as const;

/**
 * A DEVICE_SET_IRQS request. The eventfds of DATA_EVENTFD travel as ancillary data; fewer fds
 * than `count` (or none) de-assign. `start = count = 0` with DATA_NONE|ACTION_TRIGGER disables
 * the whole index.
 */
export interface SetIrqsRequest {
  /** One `DATA_*` bit | one `ACTION_*` bit. */
  flags: number;
  /** IRQ index. */
  index: number;
  /** First sub-index (vector). */
  start: number;
  /** Number of sub-indexes. */
  count: number;
  /** DATA_BOOL: one byte per sub-index (non-zero = act); otherwise empty. */
  data: Uint8Array;
}

const SET = struct({ argsz: "u32", flags: "u32", index: "u32", start: "u32", count: "u32" });
const SET_SIZE = SET.SIZE;

/** Checks the flag rules of DEVICE_SET_IRQS; throws `VfioUserError(EINVAL)`. */
function checkSetFlags(flags: number): void {
  requireFlags(flags, IrqSetFlags.DATA_TYPE_MASK | IrqSetFlags.ACTION_TYPE_MASK, "SET_IRQS flags");
  const bitCount = (x: number) => x.toString(2).replace(/0/g, "").length;
  const data = flags & IrqSetFlags.DATA_TYPE_MASK;
  const action = flags & IrqSetFlags.ACTION_TYPE_MASK;
  if (bitCount(data) !== 1 || bitCount(action) !== 1) {
    throw new VfioUserError(
      Errno.EINVAL,
      `SET_IRQS flags 0x${flags.toString(16)}: need exactly one DATA_* and one ACTION_* bit`,
    );
  }
}

/**
 * DEVICE_SET_IRQS: argsz, flags, index, start, count (u32 each), then data. argsz is the size
 * of the whole request payload including data, so it must equal the payload length.
 */
export const DeviceSetIrqs = {
  /** Fixed part of the request payload. */
  SIZE: SET_SIZE,
  /**
   * Decodes a request. Checks: argsz == payload length (>= 20), exactly one DATA_* and one
   * ACTION_* bit, DATA_BOOL data of exactly `count` bytes, no data otherwise, and
   * start + count <= 2^32.
   */
  decodeRequest(payload: Uint8Array): SetIrqsRequest {
    const { argsz, flags, index, start, count } = SET.decodeHead(payload, "DEVICE_SET_IRQS");
    requireArgsz(argsz, SET_SIZE, "DEVICE_SET_IRQS");
    requireExact(payload, argsz, "DEVICE_SET_IRQS (argsz)");
    checkSetFlags(flags);
    const req = { flags, index, start, count, data: payload.subarray(SET_SIZE) };
    if (req.start + req.count > U32_MAX + 1) {
      throw new VfioUserError(
        Errno.EINVAL,
        `SET_IRQS start ${req.start} + count ${req.count} wraps`,
      );
    }
    const want = (flags & IrqSetFlags.DATA_BOOL) !== 0 ? req.count : 0;
    if (req.data.length !== want) {
      throw new VfioUserError(
        Errno.EINVAL,
        `SET_IRQS: ${req.data.length} data bytes, expected ${want} for flags 0x${
          flags.toString(16)
        }`,
      );
    }
    return req;
  },
  /** Encodes a request (argsz = 20 + data.length). */
  encodeRequest(req: SetIrqsRequest): Uint8Array {
    return SET.encode({ ...req, argsz: SET_SIZE + req.data.length }, req.data);
  },
  /** The reply has no payload. */
  decodeReply(payload: Uint8Array): void {
    NoPayload.decode(payload, "DEVICE_SET_IRQS reply");
  },
  /** The reply has no payload. */
  encodeReply(): Uint8Array {
    return NoPayload.encode();
  },
} as const;
