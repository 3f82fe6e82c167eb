/**
 * Whole-message helpers: header + payload framing, error replies, the known-command check and
 * the codec for messages without a payload (spec, "Header" and "Commands").
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import {
  Command,
  decodeHeader,
  encodeHeader,
  Flags,
  type Header,
  SIZE as HEADER_SIZE,
} from "./header.ts";
import { checkUint, EMPTY, requireExact, U32_MAX } from "./wire.ts";

/** Header fields a caller chooses; `size` is computed from the payload. */
export interface MessageFields {
  /** Message id (u16); a reply echoes the command's id. */
  id: number;
  /** Command number (u16); a reply echoes it. */
  cmd: number;
  /** Header flags (type bits, NO_REPLY, ERROR); default 0 = command. */
  flags?: number;
  /** errno of an error reply; default 0. */
  error?: number;
}

/** Builds a whole message: the 16-byte header (with `size` filled in) followed by `payload`. */
export function encodeMessage(fields: MessageFields, payload: Uint8Array = EMPTY): Uint8Array {
  const size = HEADER_SIZE + payload.length;
  checkUint(size, U32_MAX, "message size");
  const out = new Uint8Array(size);
  encodeHeader({
    id: checkUint(fields.id, 0xffff, "message id"),
    cmd: checkUint(fields.cmd, 0xffff, "command"),
    size,
    flags: checkUint(fields.flags ?? 0, U32_MAX, "header flags"),
    error: checkUint(fields.error ?? 0, U32_MAX, "header error"),
  }, out);
  out.set(payload, HEADER_SIZE);
  return out;
}

/** A command message (type COMMAND), with NO_REPLY set when `noReply`. */
export function encodeCommand(
  id: number,
  cmd: number,
  payload: Uint8Array = EMPTY,
  noReply = false,
): Uint8Array {
  const flags = Flags.TYPE_COMMAND | (noReply ? Flags.NO_REPLY : 0);
  return encodeMessage({ id, cmd, flags }, payload);
}

/** A successful reply (type REPLY) echoing `id` and `cmd`. */
export function encodeReply(id: number, cmd: number, payload: Uint8Array = EMPTY): Uint8Array {
  return encodeMessage({ id, cmd, flags: Flags.TYPE_REPLY }, payload);
}

/**
 * An error reply: the header alone (size 16), flags REPLY|ERROR, `errno` in `error`
 * (spec, "Header": "If an error occurs, the reply message must only include the reply header").
 */
export function errorReply(id: number, cmd: number, errno: number): Uint8Array {
  return encodeMessage({ id, cmd, flags: Flags.TYPE_REPLY | Flags.ERROR, error: errno });
}

/** A message split into its decoded header and its payload (a view, not a copy). */
export interface Message {
  /** The decoded 16-byte header. */
  header: Header;
  /** The bytes after the header. */
  payload: Uint8Array;
}

/**
 * Splits one complete message. Throws `VfioUserError(EINVAL)` when the buffer is shorter than a
 * header or when the header's `size` disagrees with the buffer length.
 */
export function splitMessage(buf: Uint8Array): Message {
  const header = decodeHeader(buf);
  if (header.size !== buf.length) {
    throw new VfioUserError(
      Errno.EINVAL,
      `message size field ${header.size} != buffer length ${buf.length}`,
    );
  }
  return { header, payload: buf.subarray(HEADER_SIZE) };
}

const KNOWN_COMMANDS: ReadonlySet<number> = new Set(Object.values(Command));

/**
 * Whether `cmd` is a command of the final spec (1-13 and 15-18). 14, the removed
 * DIRTY_PAGES, and anything else is unknown and gets an error reply.
 */
export function isKnownCommand(cmd: number): boolean {
  return KNOWN_COMMANDS.has(cmd);
}

/** Whether `cmd` is sent server → client (DMA_READ, DMA_WRITE; spec, "Commands" table). */
export function isServerCommand(cmd: number): boolean {
  return cmd === Command.DMA_READ || cmd === Command.DMA_WRITE;
}

/**
 * Codec for a payload that must be empty: DEVICE_RESET both ways, and the replies of DMA_MAP,
 * DEVICE_SET_IRQS and MIG_DATA_WRITE.
 */
export const NoPayload = {
  /** Fixed payload size. */
  SIZE: 0,
  /** Throws `VfioUserError(EINVAL)` unless `payload` is empty. */
  decode(payload: Uint8Array, what = "message"): void {
    requireExact(payload, 0, what);
  },
  /** The empty payload. */
  encode(): Uint8Array {
    return EMPTY;
  },
} as const;
