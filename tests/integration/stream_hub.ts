/**
 * The far end of `-netdev stream` cables for the migration tests: listens on a UNIX socket, takes
 * any number of connections (each vfud's NIC connects as a client) and speaks QEMU's framing (a
 * 4-byte big-endian length before each frame; the e2e stream peer's codec, written independently
 * of vfud's). It records the frames each connection delivered
 * and sends frames to the connection the test names, like a switch port.
 *
 * Test frames carry a sequence number: ethertype 0x88b5 (local experimental), "MIGT", a
 * direction byte and a u32 sequence, padded to the minimum frame size.
 *
 * @module
 */
import { pollUntil } from "../../client/mod.ts";
import { framed, readFramed } from "../e2e/stream_peer.ts";

/** Ethertype of test frames. */
export const TEST_ETHERTYPE = 0x88b5;
/** The station address the tests give the NIC under test, and the hub's side of the cable. */
export const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
export const PEER_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x02);

/** The sequence numbers of the test frames of direction `dir` among `frames`, in order. */
export function testSeqs(frames: readonly Uint8Array[], dir: string): number[] {
  return frames.map((f) => testSeq(f, dir)).filter((s): s is number => s !== undefined);
}

/** Sequence numbers `from` to `to` (exclusive): what arrived when nothing is lost. */
export function seqRange(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** A test frame from `src` to `dst` with sequence number `seq` in direction `dir` ("g" or "p"). */
export function testFrame(dst: Uint8Array, src: Uint8Array, dir: string, seq: number, len = 64) {
  const f = new Uint8Array(Math.max(len, 60));
  f.set(dst, 0);
  f.set(src, 6);
  const v = new DataView(f.buffer);
  v.setUint16(12, TEST_ETHERTYPE, false);
  f.set(new TextEncoder().encode("MIGT"), 14);
  f[18] = dir.charCodeAt(0);
  v.setUint32(19, seq, false);
  return f;
}

/** The sequence number of a test frame in direction `dir`, or undefined for any other frame. */
export function testSeq(f: Uint8Array, dir: string): number | undefined {
  if (f.length < 23) return undefined;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (v.getUint16(12, false) !== TEST_ETHERTYPE) return undefined;
  if (new TextDecoder().decode(f.subarray(14, 18)) !== "MIGT" || f[18] !== dir.charCodeAt(0)) {
    return undefined;
  }
  return v.getUint32(19, false);
}

/** One connected NIC. */
export class HubPort {
  /** Frames received from the NIC, in order. */
  readonly frames: Uint8Array[] = [];
  readonly #conn: Deno.UnixConn;
  #writes: Promise<unknown> = Promise.resolve();
  readonly done: Promise<void>;
  closed = false;
  #hold: PromiseWithResolvers<void> | undefined;

  constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    this.done = this.#read();
  }

  /** Sends frames in one write (a burst the NIC reads at once). */
  send(frames: readonly Uint8Array[]): Promise<void> {
    const msg = framed(frames);
    this.#writes = this.#writes.then(async () => {
      for (let off = 0; off < msg.length;) off += await this.#conn.write(msg.subarray(off));
    });
    return this.#writes.then(() => {});
  }

  /** Stops reading: what the NIC sends backs up in the socket and its backend (congestion). */
  pauseReading(): void {
    this.#hold ??= Promise.withResolvers<void>();
  }

  /** Reads again. */
  resumeReading(): void {
    this.#hold?.resolve();
    this.#hold = undefined;
  }

  async #read(): Promise<void> {
    try {
      await readFramed(this.#conn, (f) => this.frames.push(f), () => this.#hold?.promise);
    } catch { /* closed */ }
    this.closed = true;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* already */ }
  }
}

/** A listening hub. */
export class StreamHub implements AsyncDisposable {
  readonly path: string;
  readonly ports: HubPort[] = [];
  readonly #listener: Deno.UnixListener;
  readonly #accepting: Promise<void>;

  constructor(path: string) {
    this.path = path;
    this.#listener = Deno.listen({ transport: "unix", path });
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) this.ports.push(new HubPort(conn));
    } catch { /* closed */ }
  }

  /** Waits (bounded) for connection number `index` (0-based). */
  port(index: number, timeoutMs = 20_000): Promise<HubPort> {
    return pollUntil(() => this.ports[index], `stream connection ${index}`, timeoutMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#listener.close();
    } catch { /* already */ }
    for (const p of this.ports) {
      p.resumeReading();
      p.close();
    }
    await this.#accepting;
    await Promise.all(this.ports.map((p) => p.done));
  }
}
