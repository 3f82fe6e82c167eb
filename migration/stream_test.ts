import assert from "node:assert/strict";
import { Errno, ErrnoError } from "../sys/errno.ts";
import { toHex } from "../protocol/hex.ts";
import { crc32c } from "./crc32c.ts";
import {
  decodeStream,
  encodeFrame,
  FORMAT_VERSION,
  HEADER_SIZE,
  SectionId,
  type StreamExpectation,
} from "./stream.ts";

const BLK: StreamExpectation = { deviceType: "virtio-blk", maxStateVersion: 1 };
const INFO = { deviceType: "virtio-blk", stateVersion: 1 };

function refused(bytes: Uint8Array, errno: number, re: RegExp, expect = BLK): void {
  assert.throws(
    () => decodeStream(bytes, expect),
    (e) => {
      assert.ok(e instanceof ErrnoError, String(e));
      assert.equal(e.errno, errno, e.message);
      assert.match(e.message, re);
      return true;
    },
  );
}

/** Recomputes the CRC of a frame at `at` after a test edited it. */
function fixCrc(b: Uint8Array, at = 0): Uint8Array {
  const v = new DataView(b.buffer, b.byteOffset + at);
  const len = v.getUint32(32, true);
  const crc = crc32c(
    b.subarray(at + HEADER_SIZE, at + HEADER_SIZE + len),
    crc32c(b.subarray(at, at + 36)),
  );
  v.setUint32(36, crc, true);
  return b;
}

Deno.test("stream: golden bytes of a frame", () => {
  const f = encodeFrame(INFO, [{ id: SectionId.IRQ, data: { intx: true } }], true);
  assert.equal(
    toHex(f),
    "564655444d494700" + // magic
      "0100" + "0100" + "01000000" + // format 1, FINAL, state version 1
      "76697274696f2d626c6b000000000000" + // "virtio-blk"
      "10000000" + // 16 bytes of sections
      "9d668631" + // CRC-32C (also recomputed below)
      "0300" + "0000" + "08000000" + "080104696e74780" + "2",
  );
  assert.equal(
    new DataView(f.buffer).getUint32(36, true),
    crc32c(f.subarray(40), crc32c(f.subarray(0, 36))),
  );
});

Deno.test("stream: frames merge, later sections win, FINAL ends the stream", () => {
  const early = encodeFrame(INFO, [{ id: SectionId.PCI_CONFIG, data: 1 }, {
    id: SectionId.MSIX,
    data: 2,
  }], false);
  const last = encodeFrame(INFO, [{ id: SectionId.PCI_CONFIG, data: 3 }, {
    id: SectionId.DEVICE,
    data: "d",
  }], true);
  const s = new Uint8Array(early.length + last.length);
  s.set(early);
  s.set(last, early.length);
  const d = decodeStream(s, BLK);
  assert.equal(d.stateVersion, 1);
  assert.deepEqual([...d.sections].sort(), [[1, 3], [2, 2], [4, "d"]]);
});

Deno.test("stream: truncated, corrupt, wrong-type, newer and malformed streams are refused", () => {
  const good = encodeFrame(INFO, [{ id: SectionId.DEVICE, data: { a: 1n } }], true);
  for (let n = 0; n < good.length; n++) {
    assert.throws(
      () => decodeStream(good.subarray(0, n), BLK),
      (x) => (x as ErrnoError).errno === Errno.EINVAL,
    );
  }
  refused(new Uint8Array(0), Errno.EINVAL, /no final frame/);
  refused(good.subarray(0, 20), Errno.EINVAL, /truncated/);
  for (let i = 0; i < good.length; i++) {
    if (i >= 36 && i < 40) continue; // the CRC itself
    const bad = good.slice();
    bad[i] ^= 0x40;
    assert.throws(() => decodeStream(bad, BLK), (x) => x instanceof ErrnoError, `byte ${i}`);
  }
  const flipped = good.slice();
  flipped[HEADER_SIZE + 9] ^= 1;
  refused(flipped, Errno.EBADMSG, /CRC mismatch/);
  refused(good, Errno.ENODEV, /state of a virtio-blk device, this is e1000/, {
    deviceType: "e1000",
    maxStateVersion: 1,
  });
  const newer = encodeFrame({ ...INFO, stateVersion: 2 }, [], true);
  refused(newer, Errno.ENOTSUP, /state version 2 is newer/);
  const future = fixCrc(good.slice());
  new DataView(future.buffer).setUint16(8, FORMAT_VERSION + 1, true);
  refused(fixCrc(future), Errno.ENOTSUP, /format version 2 is newer/);
  const flags = good.slice();
  new DataView(flags.buffer).setUint16(10, 3, true);
  refused(fixCrc(flags), Errno.EINVAL, /unknown frame flags/);
  const magic = good.slice();
  magic[0] = 0x41;
  refused(fixCrc(magic), Errno.EINVAL, /no frame magic/);
  const trailing = new Uint8Array(good.length + 1);
  trailing.set(good);
  refused(trailing, Errno.EINVAL, /1 bytes after the final frame/);
  const noFinal = encodeFrame(INFO, [], false);
  refused(noFinal, Errno.EINVAL, /no final frame/);
  const unknown = encodeFrame(INFO, [{ id: 99, data: null }], true);
  refused(unknown, Errno.EINVAL, /unknown section 99/);
  const twice = encodeFrame(INFO, [{ id: 4, data: null }, { id: 4, data: null }], true);
  refused(twice, Errno.EINVAL, /section 4 twice/);
  refused(
    (() => {
      const a = encodeFrame(INFO, [], false);
      const b = encodeFrame({ ...INFO, stateVersion: 1 }, [], true);
      const c = new Uint8Array(a.length + b.length);
      c.set(a);
      c.set(b, a.length);
      new DataView(c.buffer).setUint32(12, 0, true);
      return fixCrc(c);
    })(),
    Errno.EINVAL,
    /state version 0/,
  );
});

Deno.test("stream: seeded fuzzing never crashes and always names an errno", () => {
  const good = encodeFrame(INFO, [
    { id: SectionId.PCI_CONFIG, data: { space: new Uint8Array(256) } },
    { id: SectionId.DEVICE, data: { queues: [{ size: 256, desc: 0x1000n }] } },
  ], true);
  let seed = 99;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  for (let i = 0; i < 2000; i++) {
    const b = good.slice(0, good.length - rnd(8));
    for (let k = rnd(4); k >= 0; k--) b[rnd(b.length)] = rnd(256);
    if (rnd(2)) fixCrc(b);
    try {
      decodeStream(b, BLK);
    } catch (e) {
      assert.ok(e instanceof ErrnoError, String(e));
      assert.ok(
        ([Errno.EINVAL, Errno.EBADMSG, Errno.ENODEV, Errno.ENOTSUP] as number[]).includes(e.errno),
      );
    }
  }
});
