/**
 * Does registering the image file (IORING_REGISTER_FILES) or the data buffers
 * (IORING_REGISTER_BUFFERS, READ_FIXED) make an io_uring read cheaper here? Times reads from the
 * page cache at queue depth 1, submitted and reaped from this thread as the block backend does,
 * the three ways in alternating rounds; prints the median per read of each.
 *
 * Usage: deno run -A tools/uring_bench.ts [--reads=20000] [--rounds=5] [--dir=/var/tmp]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { check, closeFd, cstr, libc } from "../sys/ffi.ts";
import { C, fillIovec, IOVEC_SIZE } from "../sys/layout.ts";
import { IoUring, SQE_FIXED_FILE, UringOp } from "../sys/io_uring.ts";

const FILE_SIZE = 64 << 20;
const WAYS = ["readv", "readv, registered file", "read_fixed, registered file and buffer"];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Microseconds per read of `size` bytes at random aligned offsets, way `way`. */
function timeReads(ring: IoUring, fd: number, buf: Uint8Array, way: number, n: number): number {
  const iov = new DataView(new ArrayBuffer(IOVEC_SIZE));
  fillIovec(iov, [buf]);
  const iovAddr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(iov.buffer)));
  const bufAddr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
  const slots = FILE_SIZE / buf.length;
  let done = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const offset = BigInt(((i * 7919) % slots) * buf.length);
    ring.prepare({
      op: way === 2 ? UringOp.READ_FIXED : UringOp.READV,
      fd: way === 0 ? fd : 0,
      sqeFlags: way === 0 ? 0 : SQE_FIXED_FILE,
      addr: way === 2 ? bufAddr : iovAddr,
      len: way === 2 ? buf.length : 1,
      offset,
      flags: 0,
      tag: i,
    });
    ring.submit();
    while (
      ring.reap((_t, res) => {
        if (res !== buf.length) {
          throw new Error(`way ${way}, ${buf.length} bytes: read returned ${res}`);
        }
        done++;
      }) === 0
    );
  }
  // The iovec must outlive the reads: an address taken from a buffer does not keep it alive.
  if (done !== n || iov.byteLength !== IOVEC_SIZE) throw new Error(`${done} of ${n} reads`);
  return (performance.now() - t0) * 1000 / n;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      reads: { type: "string", default: "20000" },
      rounds: { type: "string", default: "5" },
      dir: { type: "string", default: "/var/tmp" },
    },
  });
  const path = await Deno.makeTempFile({ dir: values.dir, prefix: "vfud-uring-bench-" });
  try {
    await Deno.writeFile(path, new Uint8Array(FILE_SIZE).fill(7)); // data, not holes
    const fd = check("open", libc.open(cstr(path), C.O_RDONLY | C.O_CLOEXEC, 0));
    for (const size of [4096, 1 << 20]) {
      const ring = new IoUring(8);
      const buf = new Uint8Array(size);
      ring.registerFiles([fd]);
      ring.registerBuffers([buf]);
      const reads = Math.max(200, Math.floor(Number(values.reads) / (size > 4096 ? 64 : 1)));
      for (let w = 0; w < WAYS.length; w++) timeReads(ring, fd, buf, w, 200); // page cache, JIT
      const us: number[][] = WAYS.map(() => []);
      for (let r = 0; r < Number(values.rounds); r++) {
        for (let w = 0; w < WAYS.length; w++) us[w].push(timeReads(ring, fd, buf, w, reads));
      }
      const base = median(us[0]);
      for (let w = 0; w < WAYS.length; w++) {
        const m = median(us[w]);
        console.log(
          `${size >> 10} KiB, ${WAYS[w]}: ${m.toFixed(2)} µs per read ` +
            `[${Math.min(...us[w]).toFixed(2)}-${Math.max(...us[w]).toFixed(2)}] (${
              (m / base).toFixed(2)
            }x)`,
        );
      }
      ring.close();
    }
    closeFd(fd);
  } finally {
    await Deno.remove(path);
  }
}
