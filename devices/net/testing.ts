/**
 * Helpers for backend tests: a running EventLoop, condition polling and raw fd I/O.
 *
 * @module
 */
import { EventLoop } from "../../sys/event_loop.ts";
import { errno, libc } from "../../sys/ffi.ts";
import { Errno } from "../../sys/errno.ts";

/** An EventLoop running until `stop()` resolves. */
export function runningLoop(): { loop: EventLoop; stop(): Promise<void> } {
  const loop = new EventLoop();
  const done = loop.run();
  return {
    loop,
    stop: () => {
      loop.stop();
      return done;
    },
  };
}

/** Polls `cond` every few ms until it holds; throws after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Writes all of `bytes` to a non-blocking fd (retrying on EAGAIN). */
export async function writeAll(fd: number, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    const rest = bytes.subarray(off);
    const n = Number(libc.write(fd, rest, BigInt(rest.length)));
    if (n > 0) off += n;
    else if (errno() === Errno.EAGAIN) await new Promise((r) => setTimeout(r, 1));
    else throw new Error(`write failed: errno ${errno()}`);
  }
}

/** Reads exactly `n` bytes from a non-blocking fd (waiting up to 3 s). */
export async function readExactly(fd: number, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  const end = performance.now() + 3000;
  while (off < n) {
    const rest = out.subarray(off);
    const r = Number(libc.read(fd, rest, BigInt(rest.length)));
    if (r > 0) off += r;
    else if (r === 0) throw new Error("end of stream");
    else if (errno() !== Errno.EAGAIN) throw new Error(`read failed: errno ${errno()}`);
    else if (performance.now() > end) throw new Error(`timed out after ${off}/${n} bytes`);
    else await new Promise((r) => setTimeout(r, 2));
  }
  return out;
}
