/**
 * The 16-byte message header every vfio-user message starts with (spec, "Header").
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import { nameOf, struct } from "./wire.ts";

/** Size of the header in bytes. */
export const SIZE = 16;

/** Command numbers of the final spec. 14 (old DIRTY_PAGES) was removed and is rejected. */
export const Command = {
  VERSION: 1,
  DMA_MAP: 2,
  DMA_UNMAP: 3,
  DEVICE_GET_INFO: 4,
  DEVICE_GET_REGION_INFO: 5,
  DEVICE_GET_REGION_IO_FDS: 6,
  DEVICE_GET_IRQ_INFO: 7,
  DEVICE_SET_IRQS: 8,
  REGION_READ: 9,
  REGION_WRITE: 10,
  DMA_READ: 11,
  DMA_WRITE: 12,
  DEVICE_RESET: 13,
  REGION_WRITE_MULTI: 15,
  DEVICE_FEATURE: 16,
  MIG_DATA_READ: 17,
  MIG_DATA_WRITE: 18,
} as const;

/** Name of a command number, or `CMD_<n>` for unknown ones (for logs and traces). */
export function commandName(cmd: number): string {
  return nameOf(Command, cmd) ?? `CMD_${cmd}`;
}

/** Header flag bits. Bits 0-3 hold the message type. */
export const Flags = {
  TYPE_MASK: 0xf,
  TYPE_COMMAND: 0,
  TYPE_REPLY: 1,
  NO_REPLY: 0x10,
  ERROR: 0x20,
} as const;

/** A decoded header. */
export interface Header {
  id: number;
  cmd: number;
  /** Whole message size including the header. */
  size: number;
  flags: number;
  error: number;
}

const HEADER = struct({ id: "u16", cmd: "u16", size: "u32", flags: "u32", error: "u32" });

/** Decodes a header; checks nothing but the length (see {@link validateHeader}). */
export function decodeHeader(buf: Uint8Array): Header {
  if (buf.length < SIZE) throw new VfioUserError(Errno.EINVAL, `short header: ${buf.length}`);
  return HEADER.read(buf);
}

/** Writes `h` into the first 16 bytes of `buf` (`RangeError` for a field that does not fit). */
export function encodeHeader(h: Header, buf: Uint8Array): void {
  HEADER.write(buf, h);
}

/** Message type (command or reply) of a header. */
export function messageType(h: Header): number {
  return h.flags & Flags.TYPE_MASK;
}

/**
 * Checks the framing fields before any payload is allocated: `size` within [16, maxSize] and a
 * known message type. Throws a `VfioUserError`; framing errors are fatal for the connection
 * because the stream position can no longer be trusted.
 */
export function validateHeader(h: Header, maxSize: number): void {
  if (h.size < SIZE) throw new VfioUserError(Errno.EINVAL, `message size ${h.size} < header`);
  if (h.size > maxSize) {
    throw new VfioUserError(Errno.E2BIG, `message size ${h.size} exceeds limit ${maxSize}`);
  }
  const t = messageType(h);
  if (t !== Flags.TYPE_COMMAND && t !== Flags.TYPE_REPLY) {
    throw new VfioUserError(Errno.EINVAL, `unknown message type ${t}`);
  }
}
