/**
 * The migration data stream: what MIG_DATA_READ hands out on the source and MIG_DATA_WRITE
 * feeds in on the destination (spec, "VFIO_USER_MIG_DATA_READ": the data is an opaque stream).
 * vfud's stream is a sequence of frames; pre-copy sends early frames while the device runs, and
 * stop-and-copy ends the stream with a FINAL frame. A frame is a header and sections:
 *
 * | offset | size | field                                                               |
 * | ------ | ---- | ------------------------------------------------------------------- |
 * | 0      | 8    | magic "VFUDMIG\0"                                                   |
 * | 8      | 2    | format version ({@link FORMAT_VERSION})                             |
 * | 10     | 2    | flags: bit 0 FINAL (the last frame); other bits zero                |
 * | 12     | 4    | device state version (of the device section)                        |
 * | 16     | 16   | device type, ASCII, NUL padded ("virtio-blk", "e1000")              |
 * | 32     | 4    | length of the sections that follow                                  |
 * | 36     | 4    | CRC-32C of bytes 0-35 and the sections                              |
 *
 * Each section: id u16, reserved u16 (0), length u32, then a state record (protocol/record.ts)
 * of that many bytes. Sections of a later frame replace the same sections of earlier ones.
 *
 * Decoding is for untrusted input: every violation throws `ErrnoError` with an errno:
 * EINVAL (truncated, malformed, trailing data, missing FINAL frame), EBADMSG (CRC mismatch),
 * ENODEV (another device type), ENOTSUP (a newer format or device state version).
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";
import { decodeRecord, encodeRecord, type RecordValue } from "../protocol/record.ts";
import { crc32c } from "./crc32c.ts";

/** Frame magic. */
export const MAGIC: Uint8Array = new TextEncoder().encode("VFUDMIG\0");
/** The stream format this build writes and the newest it reads. */
export const FORMAT_VERSION = 1;
/** Frame header size. */
export const HEADER_SIZE = 40;
/** Section header size. */
export const SECTION_HEADER_SIZE = 8;
/** Longest device type name. */
export const MAX_TYPE_LENGTH = 16;

/** Frame flags. */
export const FrameFlags = { FINAL: 1 } as const;

/** Section ids: the framework's parts of a device, then the device model's own state. */
export const SectionId = {
  /** PCI configuration space (pci/config.ts). */
  PCI_CONFIG: 1,
  /** MSI-X table, PBA (pci/msix.ts). */
  MSIX: 2,
  /** Interrupt lines (server/irqs.ts: INTx level). */
  IRQ: 3,
  /** The device model (Device.save()). */
  DEVICE: 4,
} as const;

const KNOWN_SECTIONS = new Set<number>(Object.values(SectionId));

/** One section to write. */
export interface Section {
  id: number;
  data: RecordValue;
}

/** What a frame is about. */
export interface FrameInfo {
  deviceType: string;
  stateVersion: number;
}

/** Encodes one frame. */
export function encodeFrame(
  info: FrameInfo,
  sections: readonly Section[],
  final: boolean,
): Uint8Array {
  const type = new TextEncoder().encode(info.deviceType);
  if (type.length === 0 || type.length > MAX_TYPE_LENGTH) {
    throw new RangeError(`device type "${info.deviceType}" does not fit the stream header`);
  }
  const bodies = sections.map((s) => ({ id: s.id, bytes: encodeRecord(s.data) }));
  const length = bodies.reduce((n, b) => n + SECTION_HEADER_SIZE + b.bytes.length, 0);
  const out = new Uint8Array(HEADER_SIZE + length);
  const v = new DataView(out.buffer);
  out.set(MAGIC, 0);
  v.setUint16(8, FORMAT_VERSION, true);
  v.setUint16(10, final ? FrameFlags.FINAL : 0, true);
  v.setUint32(12, info.stateVersion, true);
  out.set(type, 16);
  v.setUint32(32, length, true);
  let at = HEADER_SIZE;
  for (const b of bodies) {
    v.setUint16(at, b.id, true);
    v.setUint32(at + 4, b.bytes.length, true);
    out.set(b.bytes, at + SECTION_HEADER_SIZE);
    at += SECTION_HEADER_SIZE + b.bytes.length;
  }
  v.setUint32(36, crc32c(out.subarray(HEADER_SIZE), crc32c(out.subarray(0, 36))), true);
  return out;
}

/** What the destination accepts. */
export interface StreamExpectation {
  deviceType: string;
  /** Newest device state version it can load. */
  maxStateVersion: number;
}

/** A decoded stream: the device state version and the latest record of every section. */
export interface DecodedStream {
  stateVersion: number;
  sections: Map<number, RecordValue>;
}

function fail(errno: number, why: string): never {
  throw new ErrnoError(errno, `migration stream: ${why}`);
}

/** Decodes one frame header at `at`; returns the header fields. */
function decodeHeader(bytes: Uint8Array, at: number, expect: StreamExpectation) {
  if (bytes.length - at < HEADER_SIZE) {
    fail(
      Errno.EINVAL,
      `truncated: ${bytes.length - at} bytes where a ${HEADER_SIZE}-byte header starts`,
    );
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset + at, HEADER_SIZE);
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[at + i] !== MAGIC[i]) fail(Errno.EINVAL, `no frame magic at byte ${at}`);
  }
  const format = v.getUint16(8, true);
  if (format === 0) fail(Errno.EINVAL, "format version 0");
  if (format > FORMAT_VERSION) {
    fail(Errno.ENOTSUP, `format version ${format} is newer than ours (${FORMAT_VERSION})`);
  }
  const flags = v.getUint16(10, true);
  if (flags & ~FrameFlags.FINAL) fail(Errno.EINVAL, `unknown frame flags 0x${flags.toString(16)}`);
  const length = v.getUint32(32, true);
  if (length > bytes.length - at - HEADER_SIZE) {
    fail(
      Errno.EINVAL,
      `truncated: frame at byte ${at} announces ${length} bytes, ${
        bytes.length - at - HEADER_SIZE
      } follow`,
    );
  }
  const body = bytes.subarray(at + HEADER_SIZE, at + HEADER_SIZE + length);
  const crc = crc32c(body, crc32c(bytes.subarray(at, at + 36)));
  if (crc !== v.getUint32(36, true)) fail(Errno.EBADMSG, `CRC mismatch in the frame at byte ${at}`);
  const typeBytes = bytes.subarray(at + 16, at + 32);
  const nul = typeBytes.indexOf(0);
  const name = typeBytes.subarray(0, nul < 0 ? MAX_TYPE_LENGTH : nul);
  if (
    typeBytes.subarray(name.length).some((b) => b !== 0) || name.some((b) => b < 0x20 || b > 0x7e)
  ) {
    fail(Errno.EINVAL, "malformed device type");
  }
  const deviceType = new TextDecoder().decode(name);
  if (deviceType !== expect.deviceType) {
    fail(
      Errno.ENODEV,
      `state of a ${deviceType || "nameless"} device, this is ${expect.deviceType}`,
    );
  }
  const stateVersion = v.getUint32(12, true);
  if (stateVersion === 0) fail(Errno.EINVAL, "device state version 0");
  if (stateVersion > expect.maxStateVersion) {
    fail(
      Errno.ENOTSUP,
      `${deviceType} state version ${stateVersion} is newer than ours (${expect.maxStateVersion})`,
    );
  }
  return { final: (flags & FrameFlags.FINAL) !== 0, stateVersion, body };
}

function decodeSections(body: Uint8Array, into: Map<number, RecordValue>): void {
  const seen = new Set<number>();
  let at = 0;
  while (at < body.length) {
    if (body.length - at < SECTION_HEADER_SIZE) fail(Errno.EINVAL, "truncated section header");
    const v = new DataView(body.buffer, body.byteOffset + at, SECTION_HEADER_SIZE);
    const id = v.getUint16(0, true);
    if (!KNOWN_SECTIONS.has(id)) fail(Errno.EINVAL, `unknown section ${id}`);
    if (seen.has(id)) fail(Errno.EINVAL, `section ${id} twice in one frame`);
    seen.add(id);
    if (v.getUint16(2, true) !== 0) fail(Errno.EINVAL, `section ${id}: reserved field not zero`);
    const len = v.getUint32(4, true);
    if (len > body.length - at - SECTION_HEADER_SIZE) fail(Errno.EINVAL, `section ${id} truncated`);
    const start = at + SECTION_HEADER_SIZE;
    into.set(id, decodeRecord(body.subarray(start, start + len)));
    at = start + len;
  }
}

/**
 * Decodes a whole stream: frames up to and including the FINAL one, which must end it. Later
 * sections replace earlier ones. Throws `ErrnoError` (see the module doc).
 */
export function decodeStream(bytes: Uint8Array, expect: StreamExpectation): DecodedStream {
  const sections = new Map<number, RecordValue>();
  let version: number | undefined;
  let at = 0;
  for (;;) {
    if (at === bytes.length) fail(Errno.EINVAL, "incomplete: no final frame");
    const f = decodeHeader(bytes, at, expect);
    if (version !== undefined && f.stateVersion !== version) {
      fail(Errno.EINVAL, `frames of state versions ${version} and ${f.stateVersion}`);
    }
    version = f.stateVersion;
    decodeSections(f.body, sections);
    at += HEADER_SIZE + f.body.length;
    if (f.final) break;
  }
  if (at !== bytes.length) fail(Errno.EINVAL, `${bytes.length - at} bytes after the final frame`);
  return { stateVersion: version, sections };
}
