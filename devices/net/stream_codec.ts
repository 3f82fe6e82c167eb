/**
 * QEMU's `-netdev stream` / `-netdev socket` framing: every frame is preceded by its length as a
 * 4-byte big-endian integer (QEMU net/stream.c and net/net.c net_fill_rstate).
 *
 * @module
 */
import { MAX_FRAME } from "./backend.ts";

/** Length prefix size. */
export const HEADER_BYTES = 4;

/** One frame with its length prefix, in a new array. */
export function encodeFrame(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + frame.length);
  new DataView(out.buffer).setUint32(0, frame.length, false);
  out.set(frame, HEADER_BYTES);
  return out;
}

/** Thrown by {@link StreamDecoder.push} on a length no frame can have. */
export class FramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FramingError";
  }
}

/** Reassembles frames from arbitrary chunks of the byte stream. */
export class StreamDecoder {
  readonly #max: number;
  readonly #header = new Uint8Array(HEADER_BYTES);
  #headerFill = 0;
  #frame: Uint8Array | undefined;
  #frameFill = 0;

  /** `max`: the longest frame accepted (default {@link MAX_FRAME}). */
  constructor(max = MAX_FRAME) {
    this.#max = max;
  }

  /** True when no partial frame is buffered. */
  get idle(): boolean {
    return this.#headerFill === 0 && this.#frame === undefined;
  }

  /** Forgets any partial frame (new connection). */
  reset(): void {
    this.#headerFill = 0;
    this.#frame = undefined;
    this.#frameFill = 0;
  }

  /**
   * Consumes `chunk`, calling `emit` with each completed frame (a new array the callee owns).
   * Zero-length frames are skipped. Throws {@link FramingError} on a length over the maximum.
   */
  push(chunk: Uint8Array, emit: (frame: Uint8Array) => void): void {
    let at = 0;
    while (at < chunk.length) {
      if (!this.#frame) {
        const take = Math.min(HEADER_BYTES - this.#headerFill, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + take), this.#headerFill);
        this.#headerFill += take;
        at += take;
        if (this.#headerFill < HEADER_BYTES) return;
        this.#headerFill = 0;
        const len = new DataView(this.#header.buffer).getUint32(0, false);
        if (len > this.#max) throw new FramingError(`frame length ${len} over ${this.#max}`);
        if (len === 0) continue;
        this.#frame = new Uint8Array(len);
        this.#frameFill = 0;
      }
      const take = Math.min(this.#frame.length - this.#frameFill, chunk.length - at);
      this.#frame.set(chunk.subarray(at, at + take), this.#frameFill);
      this.#frameFill += take;
      at += take;
      if (this.#frameFill === this.#frame.length) {
        const done = this.#frame;
        this.#frame = undefined;
        emit(done);
      }
    }
  }
}
