/**
 * A tiny user-space host at the far end of a QEMU `-netdev stream` cable, for the e2e test of
 * vfud's stream backend (net_test.ts). It speaks QEMU's framing on a UNIX stream socket (every
 * frame preceded by its length as a 4-byte big-endian number; QEMU net/stream.c), answers ARP
 * requests and ICMP echo requests for its IPv4 address, and counts what it saw. Written from the
 * wire format, independently of vfud's own codec (devices/net/stream_codec.ts).
 *
 * Used in-process by the test; also a command for manual use:
 *
 *   deno run --allow-read --allow-write --allow-net tests/e2e/stream_peer.ts SOCKET IP [SECONDS]
 *
 * @module
 */

/** Counters of one peer connection. */
export interface StreamPeerStats {
  /** Frames received (any type). */
  rxFrames: number;
  /** Frames sent (replies). */
  txFrames: number;
  arpReplies: number;
  echoReplies: number;
  /** Largest frame received, in bytes. */
  maxFrame: number;
  /** Source MAC addresses seen, lower-case xx:xx:... */
  sources: Set<string>;
}

const MAX_FRAME = 65536;

/** `frames` in QEMU's stream framing: each preceded by its length, 4 bytes big-endian. */
export function framed(frames: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((n, f) => n + 4 + f.length, 0));
  const v = new DataView(out.buffer);
  let at = 0;
  for (const f of frames) {
    v.setUint32(at, f.length, false);
    out.set(f, at + 4);
    at += 4 + f.length;
  }
  return out;
}

/**
 * Reads QEMU-framed frames from `conn` until the end of the stream, calling `onFrame` with each
 * (a copy). Throws on a length of 0 or over 64 KiB. `beforeRead`, when it returns a promise, holds
 * the next read until it settles (a peer that stops reading).
 */
export async function readFramed(
  conn: Deno.Conn,
  onFrame: (frame: Uint8Array) => void,
  beforeRead?: () => Promise<void> | undefined,
): Promise<void> {
  let pending = new Uint8Array(0);
  const buf = new Uint8Array(256 * 1024);
  for (;;) {
    await beforeRead?.();
    const n = await conn.read(buf);
    if (n === null) return;
    const joined = new Uint8Array(pending.length + n);
    joined.set(pending);
    joined.set(buf.subarray(0, n), pending.length);
    let at = 0;
    while (joined.length - at >= 4) {
      const len = new DataView(joined.buffer, at, 4).getUint32(0, false);
      if (len === 0 || len > MAX_FRAME) throw new Error(`bad frame length ${len}`);
      if (joined.length - at - 4 < len) break;
      onFrame(joined.slice(at + 4, at + 4 + len));
      at += 4 + len;
    }
    pending = joined.slice(at);
  }
}

export class StreamPeer {
  readonly stats: StreamPeerStats = {
    rxFrames: 0,
    txFrames: 0,
    arpReplies: 0,
    echoReplies: 0,
    maxFrame: 0,
    sources: new Set(),
  };
  /** Why the read loop ended ("closed" after close(), "eof" when the other side left, or an error). */
  ended: string | undefined;
  readonly #conn: Deno.UnixConn;
  readonly #ip: number[];
  readonly #mac: number[];
  readonly #reading: Promise<void>;
  #writes: Promise<unknown> = Promise.resolve();
  #closing = false;

  private constructor(conn: Deno.UnixConn, ip: number[], mac: number[]) {
    this.#conn = conn;
    this.#ip = ip;
    this.#mac = mac;
    this.#reading = this.#readLoop();
  }

  /**
   * Connects to `path`, retrying (every 50 ms) until it accepts or `timeoutMs` passed; then
   * answers for `ip` with `mac` (default 02:00:00:00:00:02).
   */
  static async connect(
    path: string,
    ip: string,
    { mac = "02:00:00:00:00:02", timeoutMs = 10_000 } = {},
  ): Promise<StreamPeer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const conn = await Deno.connect({ transport: "unix", path });
        return new StreamPeer(
          conn,
          ip.split(".").map(Number),
          mac.split(":").map((h) => parseInt(h, 16)),
        );
      } catch (e) {
        // retry only while the server is not there yet
        const early = e instanceof Deno.errors.NotFound ||
          e instanceof Deno.errors.ConnectionRefused;
        if (!early || Date.now() > deadline) {
          throw new Error(`stream peer: cannot connect to ${path} within ${timeoutMs} ms: ${e}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Resolves when the read loop ended (see {@link ended}). */
  get done(): Promise<void> {
    return this.#reading;
  }

  /** Closes the connection and waits for the read loop (and pending writes) to finish. */
  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      try {
        this.#conn.close(); // ends a pending read or write at once
      } catch { /* already closed */ }
    }
    await Promise.all([this.#reading, this.#writes]);
  }

  async #readLoop(): Promise<void> {
    try {
      await readFramed(this.#conn, (f) => this.#receive(f));
      this.ended = this.#closing ? "closed" : "eof";
    } catch (e) {
      this.ended = this.#closing ? "closed" : `error: ${(e as Error).message}`;
    }
  }

  #send(frame: Uint8Array): void {
    const msg = framed([frame]);
    this.stats.txFrames++;
    this.#writes = this.#writes.then(async () => {
      for (let off = 0; off < msg.length;) off += await this.#conn.write(msg.subarray(off));
    }).catch(() => {/* the read loop reports a broken connection */});
  }

  #isOurs(f: Uint8Array, at: number): boolean {
    return this.#ip.every((b, i) => f[at + i] === b);
  }

  #receive(f: Uint8Array): void {
    const s = this.stats;
    s.rxFrames++;
    s.maxFrame = Math.max(s.maxFrame, f.length);
    if (f.length < 14) return;
    s.sources.add([...f.subarray(6, 12)].map((b) => b.toString(16).padStart(2, "0")).join(":"));
    const type = (f[12] << 8) | f[13];
    // ARP request (Ethernet/IPv4) for our address
    if (type === 0x0806 && f.length >= 42 && f[21] === 1 && this.#isOurs(f, 38)) {
      s.arpReplies++;
      this.#send(this.#arpReply(f));
    } else if (
      type === 0x0800 && f.length >= 42 && f[23] === 1 && f[14 + (f[14] & 0xf) * 4] === 8 &&
      this.#isOurs(f, 30)
    ) {
      s.echoReplies++;
      this.#send(this.#echoReply(f));
    }
  }

  #arpReply(req: Uint8Array): Uint8Array {
    const f = new Uint8Array(60); // minimum Ethernet frame without FCS
    f.set(req.subarray(6, 12), 0); // to the requester
    f.set(this.#mac, 6);
    f.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12); // ARP, Ethernet/IPv4, reply
    f.set(this.#mac, 22); // sender MAC
    f.set(this.#ip, 28); // sender IP
    f.set(req.subarray(22, 32), 32); // target = the requester's MAC and IP
    return f;
  }

  #echoReply(req: Uint8Array): Uint8Array {
    const l3 = 14, ihl = (req[l3] & 0xf) * 4, total = (req[l3 + 2] << 8) | req[l3 + 3];
    const f = req.slice(0, l3 + total); // drop Ethernet padding
    f.set(req.subarray(6, 12), 0);
    f.set(this.#mac, 6);
    f.set(req.subarray(l3 + 16, l3 + 20), l3 + 12); // swap IPs
    f.set(req.subarray(l3 + 12, l3 + 16), l3 + 16);
    f[l3 + 8] = 64; // TTL
    f[l3 + 10] = f[l3 + 11] = 0;
    const c = checksum(f, l3, l3 + ihl);
    f.set([c >> 8, c & 0xff], l3 + 10);
    const icmp = l3 + ihl;
    f[icmp] = 0; // echo reply
    f[icmp + 2] = f[icmp + 3] = 0;
    const ic = checksum(f, icmp, l3 + total);
    f.set([ic >> 8, ic & 0xff], icmp + 2);
    return f;
  }
}

/** The Internet checksum of b[start, end). */
function checksum(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i += 2) s += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

if (import.meta.main) {
  const [path, ip, seconds] = Deno.args;
  if (!ip) {
    console.error("usage: stream_peer.ts SOCKET IP [SECONDS]");
    Deno.exit(2);
  }
  const peer = await StreamPeer.connect(path, ip);
  console.log(`PEER connected=${path}`);
  const stop = () => peer.close();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  const timer = setTimeout(stop, Number(seconds ?? 120) * 1000);
  await peer.done;
  await peer.close();
  clearTimeout(timer);
  const s = peer.stats;
  console.log(
    `PEER ended=${peer.ended} rx_frames=${s.rxFrames} arp_replies=${s.arpReplies} ` +
      `echo_replies=${s.echoReplies} max_frame=${s.maxFrame}`,
  );
  Deno.exit(0);
}
