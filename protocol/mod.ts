/**
 * vfio-user wire protocol: pure codecs for every message of the final spec (commands 1-18,
 * 14 excluded), per QEMU `docs/interop/vfio-user.rst`. No I/O and no Deno APIs live here.
 *
 * ## Conventions
 *
 * - "Payload" means the bytes after the 16-byte header. Header framing, error replies and the
 *   known-command check are in message.ts / header.ts; everything else maps a payload to a
 *   plain object and back.
 * - Each command has one namespace object named after it in PascalCase (`DEVICE_GET_REGION_INFO`
 *   → `DeviceGetRegionInfo`) with `SIZE` (fixed part of the request payload) and four functions:
 *   `decodeRequest(payload)` / `encodeRequest(req)` and `decodeReply(payload)` /
 *   `encodeReply(reply)`. The server decodes requests and encodes replies; the in-repo test
 *   client does the opposite (for DMA_READ/DMA_WRITE, sent by the server, the roles swap).
 *   Messages without a payload use `NoPayload` (`decode*` then checks emptiness).
 * - Replies bounded by the request's `argsz` whose size varies (region info with capabilities,
 *   region io fds) take that bound: `encodeReply(info, maxArgsz)`; when the full reply does not
 *   fit they send the fixed struct with `argsz` = the size needed, and `replyFits` tells the
 *   handler not to attach fds.
 * - Feature data of DEVICE_FEATURE has per-feature codecs (`MigrationFeature`,
 *   `MigDeviceStateFeature`, `DmaLoggingControlFeature`, `DmaLoggingReportFeature`) with
 *   `decode`/`encode` (or `decodeRequest`/… where request and reply data differ).
 * - u64 addresses, offsets and sizes are `bigint`; u32/u16 fields and counts are `number`.
 *   Counts that equal a data length are not separate fields: `data.length` is the count.
 * - Decoders validate peer input and throw `VfioUserError` (EINVAL unless stated): short or
 *   overlong payloads (sizes must match exactly), argsz below the struct, counts that do not
 *   match the data present, unknown flag bits, fields the spec says must be zero, ranges that
 *   wrap past 2^64. Encoders throw `RangeError` for out-of-range values (a local bug).
 * - Decoded `data` fields are views into the input buffer, not copies.
 * - The VERSION handshake is `negotiate(requestPayload, serverCaps)` (negotiate.ts); its
 *   reply is never longer than the request.
 * - record.ts is the encoding of the plain state records inside a migration stream's sections
 *   (the stream's framing is migration/stream.ts), with a validating reader for decoded records.
 *
 * @module
 */
export * from "./errors.ts";
export {
  Command,
  commandName,
  decodeHeader,
  encodeHeader,
  Flags,
  type Header,
  messageType,
  SIZE as HEADER_SIZE,
  validateHeader,
} from "./header.ts";
export * from "./wire.ts";
export * from "./hex.ts";
export * from "./message.ts";
export * from "./version.ts";
export * from "./negotiate.ts";
export * from "./dma.ts";
export * from "./device_info.ts";
export * from "./region_info.ts";
export * from "./region_io_fds.ts";
export * from "./irq.ts";
export * from "./region_rw.ts";
export * from "./feature.ts";
export * from "./mig_data.ts";
export * from "./record.ts";
