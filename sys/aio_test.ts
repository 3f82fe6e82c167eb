import assert from "node:assert/strict";
import { type Aio, type AioKind, openAio } from "./aio.ts";
import { check, closeFd, cstr, libc } from "./ffi.ts";
import { C } from "./layout.ts";
import { EventLoop } from "./event_loop.ts";
import { withLoop } from "./testing.ts";
import { ioUringAvailable } from "./io_uring.ts";

const FALLOC_FL_KEEP_SIZE = 1;
const FALLOC_FL_PUNCH_HOLE = 2;

/** Runs `body` with an engine of `kind` on a loop that runs in the background (bounded). */
function withAio(kind: AioKind, body: (aio: Aio, loop: EventLoop) => Promise<void>) {
  return withLoop(async (loop) => {
    const aio = openAio(loop, { kind, depth: 8 });
    try {
      assert.equal(aio.kind, kind);
      await body(aio, loop);
    } finally {
      aio.close();
    }
  });
}

function op(f: (done: (res: number) => void) => void): Promise<number> {
  return new Promise((r) => f(r));
}

async function tempFile(size: number): Promise<{ fd: number; path: string }> {
  const path = await Deno.makeTempFile({ prefix: "vfud-aio-" });
  await Deno.truncate(path, size);
  const fd = check("open", libc.open(cstr(path), C.O_RDWR | C.O_CLOEXEC, 0o600));
  return { fd, path };
}

function pipe(): [number, number] {
  const fds = new Int32Array(2);
  check("pipe2", libc.pipe2(new Uint8Array(fds.buffer), C.O_CLOEXEC)); // blocking reads
  return [fds[0], fds[1]];
}

Deno.test("io_uring is available on this kernel (the tests of both engines need it)", () => {
  assert.ok(ioUringAvailable(), "io_uring_setup refused: /proc/sys/kernel/io_uring_disabled?");
});

for (const kind of ["io_uring", "threads"] as const) {
  Deno.test(`aio ${kind}: vectored write, read back, fdatasync, punch a hole`, async () => {
    const f = await tempFile(1 << 20);
    try {
      await withAio(kind, async (aio) => {
        const a = new Uint8Array(4096).fill(0xa5);
        const b = new Uint8Array(512).fill(0x5a);
        assert.equal(await op((d) => aio.writev(f.fd, [a, b], 8192n, d)), 4608);
        assert.equal(await op((d) => aio.fsync(f.fd, true, d)), 0);
        const x = new Uint8Array(4096 + 512);
        assert.equal(
          await op((d) => aio.readv(f.fd, [x.subarray(0, 100), x.subarray(100)], 8192n, d)),
          4608,
        );
        assert.deepEqual(x.subarray(0, 4096), a);
        assert.deepEqual(x.subarray(4096), b);
        const mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
        assert.equal(await op((d) => aio.fallocate(f.fd, mode, 8192n, 4096n, d)), 0);
        assert.equal(await op((d) => aio.readv(f.fd, [x], 8192n, d)), 4608);
        assert.ok(x.subarray(0, 4096).every((v) => v === 0), "the hole reads as zeros");
        assert.deepEqual(x.subarray(4096), b);
        // errors come back as -errno
        assert.equal(await op((d) => aio.readv(9999, [x], 0n, d)), -9 /* EBADF */);
        assert.equal(aio.inFlight, 0);
      });
    } finally {
      closeFd(f.fd);
      await Deno.remove(f.path);
    }
  });

  Deno.test(`aio ${kind}: a blocked operation does not hold back the next one`, async () => {
    const f = await tempFile(4096);
    const [r, w] = pipe();
    try {
      await withAio(kind, async (aio) => {
        const order: string[] = [];
        const slow = new Uint8Array(16);
        // nothing to read yet: this one blocks in the kernel (or on an I/O thread)
        const first = op((d) => aio.readv(r, [slow], -1n, d)).then((n) => {
          order.push("pipe");
          return n;
        });
        const second = op((d) => aio.readv(f.fd, [new Uint8Array(4096)], 0n, d)).then((n) => {
          order.push("file");
          return n;
        });
        assert.equal(await second, 4096);
        assert.equal(aio.inFlight, 1, "the pipe read is still in flight");
        libc.write(w, new Uint8Array([1, 2, 3]), 3n);
        assert.equal(await first, 3);
        assert.deepEqual(order, ["file", "pipe"]);
      });
    } finally {
      closeFd(r);
      closeFd(w);
      closeFd(f.fd);
      await Deno.remove(f.path);
    }
  });

  Deno.test(`aio ${kind}: more operations than slots wait their turn`, async () => {
    const f = await tempFile(64 * 4096);
    try {
      await withAio(kind, async (aio) => {
        const writes = Array.from(
          { length: 64 },
          (_, i) =>
            op((d) => aio.writev(f.fd, [new Uint8Array(4096).fill(i)], BigInt(i * 4096), d)),
        );
        assert.deepEqual(await Promise.all(writes), new Array(64).fill(4096));
        const back = new Uint8Array(64 * 4096);
        assert.equal(await op((d) => aio.readv(f.fd, [back], 0n, d)), back.length);
        for (let i = 0; i < 64; i++) assert.equal(back[i * 4096 + 7], i);
      });
    } finally {
      closeFd(f.fd);
      await Deno.remove(f.path);
    }
  });
}

Deno.test("aio auto: io_uring here", async () => {
  const loop = new EventLoop();
  const aio = openAio(loop);
  assert.equal(aio.kind, "io_uring");
  aio.close();
  loop.stop();
  await loop.run();
});
