/**
 * VERSION as QEMU 11.1's `vfio-user-pci` sends it, byte for byte (docs/protocol-notes.md,
 * "(seen)": a 214-byte message whose JSON QEMU formats with a space after every `:` and `,`).
 *
 * @module
 */
import { Version, type VersionMessage } from "../protocol/version.ts";

/** The capabilities JSON QEMU 11.1 proposes (193 bytes; 214 with header, version and NUL). */
export const QEMU_CAPS_JSON = '{"capabilities": {"pgsizes": 4096, "max_msg_fds": 16, ' +
  '"max_dma_maps": 65535, "max_data_xfer_size": 1048576, "migration": {"max_bitmap_size": ' +
  '268435456, "pgsize": 4096}, "write_multiple": true}}';

/** Size of QEMU's VERSION message, header included. */
export const QEMU_VERSION_MESSAGE_SIZE = 214;

/**
 * A VERSION payload: major u16, minor u16 and, unless `json` is null, the JSON text followed by
 * one NUL. Takes the text verbatim so tests control every byte.
 */
export function encodeVersionPayload(
  major: number,
  minor: number,
  json: string | null,
): Uint8Array {
  const text = json === null ? new Uint8Array(0) : new TextEncoder().encode(json);
  const out = new Uint8Array(4 + (json === null ? 0 : text.length + 1));
  const v = new DataView(out.buffer);
  v.setUint16(0, major, true);
  v.setUint16(2, minor, true);
  out.set(text, 4);
  return out;
}

/** A decoded VERSION reply. */
export interface VersionReply {
  major: number;
  minor: number;
  /** The server's capabilities as decoded by protocol/version.ts (null without JSON). */
  caps: VersionMessage["caps"];
  /** The JSON document as sent (parsed with `JSON.parse`), or null without JSON. */
  json: unknown;
  /** Payload size of the reply. */
  payloadSize: number;
}

/** Decodes a VERSION reply payload (NUL terminator, UTF-8 and JSON are checked). */
export function decodeVersionReply(payload: Uint8Array): VersionReply {
  const msg = Version.decodeReply(payload);
  const json = payload.length > 4
    ? JSON.parse(new TextDecoder().decode(payload.subarray(4, payload.length - 1)))
    : null;
  return { major: msg.major, minor: msg.minor, caps: msg.caps, json, payloadSize: payload.length };
}
