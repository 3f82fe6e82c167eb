/**
 * The server side of the VERSION handshake (spec, "VFIO_USER_VERSION": the reply's major equals
 * the proposal, its minor is not higher, its capabilities are a subset of those proposed).
 *
 * QEMU 11.1 reads the reply into a buffer the size of its own request and treats a longer reply
 * as fatal, so the reply payload never exceeds the request payload. When the full reply would,
 * capabilities are dropped in this order, one step at a time, until it fits:
 *
 * 1. `defaults`: keys whose value equals the spec default (no change in meaning);
 * 2. `migration` (legacy dirty-page parameters; migration v2 goes through DEVICE_FEATURE);
 * 3. `write_multiple` (the client then simply does not coalesce writes);
 * 4. `max_msg_fds` (the client then sends at most 1 fd per message: still correct);
 * 5. `twin_socket` (not enabled);
 * 6. `max_data_xfer_size`, if we accept at least the 1 MiB default;
 * 7. `max_dma_maps`, if we allow at least the 65535 default;
 * 8. `pgsizes`, if we support 4 KiB pages (the client then assumes 4 KiB only).
 *
 * If it still does not fit: `VfioUserError(E2BIG)`. The returned {@link Session} is derived from
 * the reply actually sent, so both sides agree on every limit.
 *
 * @module
 */
import { Errno, VfioUserError } from "./errors.ts";
import {
  CAP_DEFAULTS,
  Version,
  VERSION_MAJOR,
  VERSION_MINOR,
  type VersionCaps,
  type VersionMessage,
} from "./version.ts";

/**
 * Smallest max_data_xfer_size a client may propose: a page. Below it every transfer would take
 * a message per few bytes (0 would never make progress).
 */
export const MIN_DATA_XFER_SIZE = 4096;

/**
 * Bounds of the client's capability values: a value past them is refused (EINVAL) rather than
 * clamped, since the client would rely on it. Upper limits are ours and enter a min().
 */
function checkBounds(p: VersionCaps): void {
  const low = (v: number | undefined, min: number, name: string) => {
    if (v !== undefined && v < min) {
      throw new VfioUserError(Errno.EINVAL, `VERSION: ${name} ${v} is below ${min}`);
    }
  };
  low(p.maxDataXferSize, MIN_DATA_XFER_SIZE, "max_data_xfer_size");
  low(p.maxMsgFds, 1, "max_msg_fds");
  low(p.maxDmaMaps, 1, "max_dma_maps");
}

/** What this server supports. */
export interface ServerCaps {
  /** fds we accept in one message. */
  maxMsgFds: number;
  /** Largest data count we accept in one message. */
  maxDataXferSize: number;
  /** DMA windows we can hold at once. */
  maxDmaMaps: number;
  /** Supported DMA page sizes, OR'ed. */
  pgsizes: bigint;
  /** Whether we handle REGION_WRITE_MULTI. */
  writeMultiple: boolean;
  /** Whether we can run server-to-client commands on a second socket. */
  twinSocket: boolean;
  /** Legacy migration parameters to echo when the client proposes them; omit to never send. */
  migration?: { pgsize: number; maxBitmapSize: number };
}

/** The limits both sides agreed on. */
export interface Session {
  /** Negotiated major version. */
  major: number;
  /** Negotiated minor version. */
  minor: number;
  /** fds we may send in one message (the client's max_msg_fds). */
  clientMaxMsgFds: number;
  /** fds the client believes it may send us in one message. */
  serverMaxMsgFds: number;
  /** Largest data count in either direction (min of both sides and the reply). */
  maxDataXferSize: number;
  /** DMA windows the client may have at once. */
  maxDmaMaps: number;
  /** DMA page sizes in use. */
  pgsizes: bigint;
  /** Whether the client may send REGION_WRITE_MULTI. */
  writeMultiple: boolean;
  /** Twin-socket mode: the reply must carry the client's end of a new socket pair as fd 0. */
  twinSocket: boolean;
  /** Legacy migration parameters agreed, if any. */
  migration: { pgsize: number; maxBitmapSize: number } | null;
}

/** Result of {@link negotiate}. */
export interface Negotiation {
  /** The reply to send (decoded form). */
  reply: VersionMessage;
  /** The reply payload (after the header); never longer than the request payload. */
  payload: Uint8Array;
  /** Agreed limits. */
  session: Session;
  /** Names of the trimming steps that removed something (see module doc). */
  dropped: string[];
}

type Step = [name: string, apply: (c: VersionCaps, s: ServerCaps) => void];

const STEPS: Step[] = [
  ["defaults", (c) => {
    if (c.maxMsgFds === CAP_DEFAULTS.maxMsgFds) delete c.maxMsgFds;
    if (c.maxDataXferSize === CAP_DEFAULTS.maxDataXferSize) delete c.maxDataXferSize;
    if (c.maxDmaMaps === CAP_DEFAULTS.maxDmaMaps) delete c.maxDmaMaps;
    if (c.pgsizes === CAP_DEFAULTS.pgsizes) delete c.pgsizes;
    if (c.writeMultiple === false) delete c.writeMultiple;
  }],
  ["migration", (c) => delete c.migration],
  ["write_multiple", (c) => delete c.writeMultiple],
  ["max_msg_fds", (c) => delete c.maxMsgFds],
  ["twin_socket", (c) => delete c.twinSocket],
  ["max_data_xfer_size", (c, s) => {
    if (s.maxDataXferSize >= CAP_DEFAULTS.maxDataXferSize) delete c.maxDataXferSize;
  }],
  ["max_dma_maps", (c, s) => {
    if (s.maxDmaMaps >= CAP_DEFAULTS.maxDmaMaps) delete c.maxDmaMaps;
  }],
  ["pgsizes", (c, s) => {
    if ((s.pgsizes & CAP_DEFAULTS.pgsizes) !== 0n) delete c.pgsizes;
  }],
];

/** The full reply: every proposed capability with the value both sides can live with. */
function fullReply(p: VersionCaps, s: ServerCaps): VersionCaps {
  const r: VersionCaps = {};
  // max_msg_fds is our own receive limit; capped by the proposal since QEMU rejects more.
  if (p.maxMsgFds !== undefined) r.maxMsgFds = Math.min(s.maxMsgFds, p.maxMsgFds);
  if (p.maxDataXferSize !== undefined) {
    r.maxDataXferSize = Math.min(s.maxDataXferSize, p.maxDataXferSize);
  }
  const pg = s.pgsizes & (p.pgsizes ?? CAP_DEFAULTS.pgsizes);
  if (pg === 0n) {
    throw new VfioUserError(Errno.ENOTSUP, "VERSION: no DMA page size in common with the client");
  }
  if (p.pgsizes !== undefined) r.pgsizes = pg;
  if (p.maxDmaMaps !== undefined) r.maxDmaMaps = Math.min(s.maxDmaMaps, p.maxDmaMaps);
  if (p.migration !== undefined && s.migration !== undefined) {
    r.migration = {};
    if (p.migration.pgsize !== undefined) r.migration.pgsize = s.migration.pgsize;
    if (p.migration.maxBitmapSize !== undefined) {
      r.migration.maxBitmapSize = Math.min(s.migration.maxBitmapSize, p.migration.maxBitmapSize);
    }
  }
  if (p.writeMultiple !== undefined) r.writeMultiple = p.writeMultiple && s.writeMultiple;
  if (p.twinSocket?.supported === true && s.twinSocket) {
    r.twinSocket = { supported: true, fdIndex: 0 };
  }
  return r;
}

function sessionOf(p: VersionCaps, r: VersionCaps, s: ServerCaps, minor: number): Session {
  return {
    major: VERSION_MAJOR,
    minor,
    clientMaxMsgFds: p.maxMsgFds ?? CAP_DEFAULTS.maxMsgFds,
    serverMaxMsgFds: r.maxMsgFds ?? CAP_DEFAULTS.maxMsgFds,
    maxDataXferSize: Math.min(
      p.maxDataXferSize ?? CAP_DEFAULTS.maxDataXferSize,
      r.maxDataXferSize ?? CAP_DEFAULTS.maxDataXferSize,
      s.maxDataXferSize,
    ),
    maxDmaMaps: Math.min(r.maxDmaMaps ?? CAP_DEFAULTS.maxDmaMaps, s.maxDmaMaps),
    pgsizes: r.pgsizes ?? CAP_DEFAULTS.pgsizes,
    writeMultiple: r.writeMultiple === true,
    twinSocket: r.twinSocket?.supported === true,
    migration: r.migration === undefined ? null : {
      pgsize: r.migration.pgsize ?? Number(CAP_DEFAULTS.pgsizes),
      maxBitmapSize: r.migration.maxBitmapSize ?? s.migration?.maxBitmapSize ?? 0,
    },
  };
}

/**
 * Builds our VERSION reply to a client's VERSION request payload. Throws `VfioUserError`:
 * EINVAL for a malformed request, ENOTSUP for another major version or no common page size,
 * E2BIG when no reply fits in the request's length.
 */
export function negotiate(requestPayload: Uint8Array, server: ServerCaps): Negotiation {
  const req = Version.decode(requestPayload);
  if (req.major !== VERSION_MAJOR) {
    throw new VfioUserError(
      Errno.ENOTSUP,
      `VERSION: client proposes major ${req.major}, we speak ${VERSION_MAJOR}`,
    );
  }
  const minor = Math.min(req.minor, VERSION_MINOR);
  const proposed = req.caps ?? {};
  checkBounds(proposed);
  // Without JSON the client assumes every default; the checks of fullReply still apply.
  const full = fullReply(proposed, server);
  const caps = req.caps === null ? null : full;
  const dropped: string[] = [];
  const reply: VersionMessage = { major: VERSION_MAJOR, minor, caps };
  let payload = Version.encode(reply);
  for (const [name, apply] of STEPS) {
    if (caps === null || payload.length <= requestPayload.length) break;
    apply(caps, server);
    const shorter = Version.encode(reply);
    if (shorter.length < payload.length) dropped.push(name);
    payload = shorter;
  }
  if (payload.length > requestPayload.length) {
    throw new VfioUserError(
      Errno.E2BIG,
      `VERSION: smallest reply (${payload.length} bytes) exceeds the request (${requestPayload.length})`,
    );
  }
  return { reply, payload, session: sessionOf(proposed, caps ?? {}, server, minor), dropped };
}
