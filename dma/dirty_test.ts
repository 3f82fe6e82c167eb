import assert from "node:assert/strict";
import { Errno, ErrnoError } from "../sys/errno.ts";
import { DirtyLog, MAX_LOG_RANGES } from "./dirty.ts";
import { type MessageDma, SessionMemory } from "./memory.ts";
import { DmaTable } from "./table.ts";
import { check, cstr, libc } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";

const LIMITS = { pgsize: 4096n, maxBitmapSize: 4096 };
const K4 = 4096n;

/** Page numbers set in a bitmap. */
function bits(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.length * 8; i++) if (b[i >> 3] & (1 << (i & 7))) out.push(i);
  return out;
}

function errno(fn: () => unknown, e: number, re: RegExp): void {
  assert.throws(fn, (x) => x instanceof ErrnoError && x.errno === e && re.test(x.message));
}

Deno.test("dirty log: marks pages, reports and clears them", () => {
  const log = new DirtyLog(0n, [], LIMITS);
  assert.equal(log.pageSize, K4);
  log.mark(0x1000n, 1);
  log.mark(0x2fffn, 2); // straddles pages 2 and 3
  log.mark(0x10000n, 0x2000);
  const b = log.report(0n, 0x20000n, K4);
  assert.equal(b.length, 8, "32 pages: one u64 word");
  assert.deepEqual(bits(b), [1, 2, 3, 16, 17]);
  assert.deepEqual(bits(log.report(0n, 0x20000n, K4)), [], "a report clears");
});

Deno.test("dirty log: coarser report pages OR the tracked ones; a range reports only itself", () => {
  const log = new DirtyLog(K4, [], LIMITS);
  for (const a of [0x0n, 0x1000n, 0x200000n, 0x3ff000n, 0x400000n]) log.mark(a, 8);
  assert.deepEqual(bits(log.report(0x200000n, 0x200000n, 0x200000n)), [0]);
  assert.deepEqual(bits(log.report(0n, 0x800000n, 0x200000n)), [0, 2]);
  assert.equal(log.dirtyPages, 0);
});

Deno.test("dirty log: only the logged ranges are tracked", () => {
  const log = new DirtyLog(K4, [{ iova: 0x10000n, length: 0x2000n }, {
    iova: 0x1000n,
    length: 0x1000n,
  }], LIMITS);
  log.mark(0n, 0x20000);
  assert.deepEqual(bits(log.report(0n, 0x20000n, K4)), [1, 16, 17]);
});

Deno.test("dirty log: a larger page hint is kept, a smaller one raised to pgsize", () => {
  assert.equal(new DirtyLog(1n << 21n, [], LIMITS).pageSize, 1n << 21n);
  assert.equal(new DirtyLog(512n, [], LIMITS).pageSize, K4);
});

Deno.test("dirty log: limits and bad requests are refused with an errno", () => {
  errno(() => new DirtyLog(3000n, [], LIMITS), Errno.EINVAL, /not a power of two/);
  errno(() => new DirtyLog(K4, [{ iova: 0n, length: 0n }], LIMITS), Errno.EINVAL, /empty range/);
  errno(
    () =>
      new DirtyLog(K4, [{ iova: 0n, length: 0x2000n }, { iova: 0x1000n, length: 0x1000n }], LIMITS),
    Errno.EINVAL,
    /overlap/,
  );
  const many = Array.from(
    { length: MAX_LOG_RANGES + 1 },
    (_, i) => ({ iova: BigInt(i) * K4, length: K4 }),
  );
  errno(() => new DirtyLog(K4, many, LIMITS), Errno.E2BIG, /ranges/);
  const log = new DirtyLog(K4, [], LIMITS);
  errno(() => log.report(0n, 0x1000n, 2048n), Errno.EINVAL, /finer than the tracking/);
  errno(() => log.report(0x800n, 0x1000n, K4), Errno.EINVAL, /not aligned/);
  errno(() => log.report(0n, 4096n * 8n * 4097n, K4), Errno.E2BIG, /max_bitmap_size/);
  assert.equal(log.report(0n, 4096n * 8n * 4096n, K4).length, 4096, "exactly the limit is fine");
});

/** A message-DMA path that applies writes to `ram` at guest address 0. */
function messageDma(ram: Uint8Array): MessageDma {
  return {
    read: (addr, dst) =>
      Promise.resolve(void dst.set(ram.subarray(Number(addr), Number(addr) + dst.length))),
    write: (addr, src) => Promise.resolve(void ram.set(src, Number(addr))),
    settled: () => undefined,
    acquire: (n) => Promise.resolve(new Uint8Array(n)),
    releaseBuffer: () => {},
    maxBuffer: 1 << 20,
  };
}

for (const mode of ["mmap", "message"] as const) {
  Deno.test(`dirty log: session memory marks exactly the device's writes (${mode} DMA)`, async () => {
    const table = new DmaTable();
    const plain = new Uint8Array(1 << 20);
    table.map(0n, 1n << 20n, 0n, 3, mode === "mmap" ? memfd(1 << 20) : undefined);
    const mem = new SessionMemory(table, messageDma(plain));
    try {
      await mem.write(0x5000n, new Uint8Array(4)); // before logging: not marked
      const log = new DirtyLog(K4, [], LIMITS);
      mem.setDirtyLog(log);
      await mem.write(0x1ffen, new Uint8Array(4)); // pages 1, 2
      await mem.read(0x8000n, new Uint8Array(64)); // reads never mark
      await mem.transfer(0x9000n, 100, false, () => {});
      await mem.transfer(0x20000n, 0x3000, "overwrite", () => {}); // 32-34
      await mem.transferv(
        [{ addr: 0x40000n, len: 10 }, { addr: 0x41800n, len: 0x1000 }],
        "overwrite",
        () => {},
      ); // 64, 65, 66
      const m = await mem.map(0x50000n, 16, true);
      assert.deepEqual(bits(log.report(0n, 1n << 20n, K4)), [1, 2, 32, 33, 34, 64, 65, 66]);
      await m.release(); // marked when released: the device may write until then
      assert.deepEqual(bits(log.report(0n, 1n << 20n, K4)), [80]);
      mem.setDirtyLog(undefined);
      await mem.write(0x1000n, new Uint8Array(1));
      assert.equal(log.dirtyPages, 0, "stopped logging marks nothing");
    } finally {
      table.clear();
    }
  });
}

/** A memfd of `size` bytes (the table takes it over and closes it). */
function memfd(size: number): number {
  const fd = check("memfd_create", libc.memfd_create(cstr("vfud-dirty-test"), C.MFD_CLOEXEC));
  check("ftruncate", libc.ftruncate(fd, BigInt(size)));
  return fd;
}
