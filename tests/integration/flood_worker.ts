/**
 * A Worker that keeps a vfio-user socket busy: writes posted (NO_REPLY) REGION_WRITEs to a
 * read-only config register as fast as the socket takes them, until the shared stop word is
 * set or the socket breaks. Posts `{started}` after its first write and `{sent}` (bytes) when it ends.
 *
 * @module
 */
import { Command, encodeHeader, Flags, SIZE as HDR } from "../../protocol/header.ts";
import { RegionWrite } from "../../protocol/region_rw.ts";
import { errno, libc } from "../../sys/ffi.ts";
import { Errno } from "../../sys/errno.ts";

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;

scope.onmessage = (ev: MessageEvent<{ fd: number; stop: SharedArrayBuffer }>) => {
  const { fd } = ev.data;
  const stop = new Int32Array(ev.data.stop);
  // 256 messages per write: vendor id writes (read-only register, ignored by the device)
  const payload = RegionWrite.encodeRequest({ offset: 0n, region: 7, data: new Uint8Array(2) });
  const one = new Uint8Array(HDR + payload.length);
  encodeHeader({
    id: 0xf00d,
    cmd: Command.REGION_WRITE,
    size: one.length,
    flags: Flags.TYPE_COMMAND | Flags.NO_REPLY,
    error: 0,
  }, one);
  one.set(payload, HDR);
  const batch = new Uint8Array(one.length * 256);
  for (let i = 0; i < 256; i++) batch.set(one, i * one.length);
  let sent = 0; // bytes
  let off = 0;
  while (Atomics.load(stop, 0) === 0) {
    const r = Number(libc.write(fd, batch.subarray(off), BigInt(batch.length - off)));
    if (r < 0) {
      if (errno() === Errno.EAGAIN) continue; // spin: the point is to keep vfud busy
      break;
    }
    if (sent === 0) scope.postMessage({ started: true });
    sent += r;
    off = (off + r) % batch.length;
  }
  scope.postMessage({ sent });
};
