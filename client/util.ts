/**
 * Small async helpers for bounded waits. Every wait in the test client has an upper bound so a
 * broken server makes a test fail, never hang; no test asserts on elapsed time.
 *
 * @module
 */
import { WaitTimeoutError } from "./errors.ts";

/** Default upper bound of a wait, generous for a noisy 2-core machine. */
export const DEFAULT_TIMEOUT_MS = 20_000;

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Settles like `p`, or rejects with {@link WaitTimeoutError} after `ms`. The timer is always
 * cleared, so no timer outlives the wait (Deno's test sanitizers check that).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeoutError(what, ms)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Calls `check` until it returns a value other than `undefined`, sleeping between calls with a
 * backoff from 1 ms to 50 ms (a poll, not a spin); rejects with {@link WaitTimeoutError} after
 * `timeoutMs`.
 */
export async function pollUntil<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw new WaitTimeoutError(what, timeoutMs);
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}

/** Bytes from a cryptographic RNG (any length; getRandomValues is limited to 64 KiB a call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
  }
  return out;
}

/** Little-endian u16/u32/u64 helpers over byte arrays. */
export const le = {
  u16(b: Uint8Array, off = 0): number {
    return b[off] | (b[off + 1] << 8);
  },
  u32(b: Uint8Array, off = 0): number {
    return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
  },
  u64(b: Uint8Array, off = 0): bigint {
    return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(off, true);
  },
  /** 2 bytes of `v`. */
  b16(v: number): Uint8Array {
    return Uint8Array.of(v & 0xff, (v >> 8) & 0xff);
  },
  /** 4 bytes of `v`. */
  b32(v: number): Uint8Array {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, v >>> 0, true);
    return out;
  },
  /** 8 bytes of `v`. */
  b64(v: bigint): Uint8Array {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, v, true);
    return out;
  },
} as const;
