/**
 * The ring itself, without an engine: registered files (IOSQE_FIXED_FILE) and registered buffers
 * (READ_FIXED) read the bytes the file holds, and a bad registration is an error with its errno.
 */
import assert from "node:assert/strict";
import { check, closeFd, cstr, libc, SysError } from "./ffi.ts";
import { C, fillIovec, IOVEC_SIZE } from "./layout.ts";
import { IoUring, SQE_FIXED_FILE, UringOp } from "./io_uring.ts";
import { Errno } from "./errno.ts";

/** Submits what was prepared and polls for `n` completions (page-cache reads finish at once). */
function completions(ring: IoUring, n: number): Map<number, number> {
  ring.submit();
  const got = new Map<number, number>();
  const deadline = Date.now() + 5000;
  while (got.size < n) {
    ring.reap((tag, res) => got.set(tag, res));
    if (Date.now() > deadline) throw new Error(`${got.size} of ${n} completions in 5 s`);
  }
  return got;
}

Deno.test("io_uring: reads through a registered file and into a registered buffer", async () => {
  const path = await Deno.makeTempFile({ prefix: "vfud-uring-" });
  const data = crypto.getRandomValues(new Uint8Array(8192));
  await Deno.writeFile(path, data);
  const fd = check("open", libc.open(cstr(path), C.O_RDONLY | C.O_CLOEXEC, 0));
  const ring = new IoUring(4);
  try {
    ring.registerFiles([fd]);
    const plain = new Uint8Array(4096);
    const iov = new DataView(new ArrayBuffer(IOVEC_SIZE));
    fillIovec(iov, [plain]);
    const iovAddr = Deno.UnsafePointer.value(Deno.UnsafePointer.of(iov.buffer));
    ring.prepare({
      op: UringOp.READV,
      fd: 0, // index 0 of the registered files
      sqeFlags: SQE_FIXED_FILE,
      addr: BigInt(iovAddr),
      len: 1,
      offset: 4096n,
      flags: 0,
      tag: 1,
    });
    const fixed = new Uint8Array(8192);
    ring.registerBuffers([new Uint8Array(16), fixed]);
    const at = fixed.subarray(100, 100 + 4096); // a buffer inside registered buffer 1
    ring.prepare({
      op: UringOp.READ_FIXED,
      fd: 0,
      sqeFlags: SQE_FIXED_FILE,
      addr: BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(at))),
      len: at.length,
      offset: 0n,
      flags: 0,
      tag: 2,
      bufIndex: 1,
    });
    const got = completions(ring, 2);
    assert.deepEqual([got.get(1), got.get(2)], [4096, 4096]);
    assert.deepEqual(plain, data.subarray(4096));
    assert.deepEqual(at, data.subarray(0, 4096));
  } finally {
    ring.close();
    closeFd(fd);
    await Deno.remove(path);
  }
});

Deno.test("io_uring: registering what is not a file is refused with its errno", () => {
  const ring = new IoUring(2);
  try {
    assert.throws(
      () => ring.registerFiles([1 << 30]),
      (e) => e instanceof SysError && e.errno === Errno.EBADF && /FILES/.test(e.message),
    );
  } finally {
    ring.close();
  }
});
