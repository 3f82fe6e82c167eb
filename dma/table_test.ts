import assert from "node:assert/strict";
import { DmaTable } from "./table.ts";
import { DmaMapFlags } from "../protocol/dma.ts";
import { SessionMemory } from "./memory.ts";
import { check, cstr, libc } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";
import { Errno, ErrnoError } from "../sys/errno.ts";
import { GuestFault } from "./guest_memory.ts";

const RW = DmaMapFlags.READ | DmaMapFlags.WRITE;

/** A memfd of `size` bytes, plus a second mapping of it to observe the server's writes. */
function memfd(size: number): { fd: number; view: Uint8Array } {
  const fd = check(
    "memfd_create",
    libc.memfd_create(cstr("t"), C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING),
  );
  check("ftruncate", libc.ftruncate(fd, BigInt(size)));
  const p = libc.mmap(null, BigInt(size), C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0n);
  return { fd, view: new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p!, size)) };
}

/** A guest access outside every map. */
function unmapped(e: unknown): boolean {
  return e instanceof GuestFault && e.errno === Errno.EFAULT;
}

function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof ErrnoError) return e.errno;
    throw e;
  }
  return 0;
}

Deno.test("mmapped maps are zero-copy views of the client's memory", async () => {
  const t = new DmaTable();
  const { fd, view } = memfd(8192);
  t.map(0x10000n, 8192n, 0n, RW, fd);
  const mem = new SessionMemory(t);
  view[5] = 42;
  const m = await mem.map(0x10005n, 4, true);
  assert.equal(m.segments.length, 1);
  assert.equal(m.segments[0][0], 42);
  m.segments[0][1] = 7;
  await m.release();
  assert.equal(view[6], 7);
  await mem.write(0x11000n, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...view.subarray(0x1000, 0x1003)], [1, 2, 3]);
});

Deno.test("a range spanning two adjacent maps yields two segments", async () => {
  const t = new DmaTable();
  const a = memfd(4096), b = memfd(4096);
  t.map(0n, 4096n, 0n, RW, a.fd);
  t.map(4096n, 4096n, 0n, RW, b.fd);
  a.view[4095] = 1;
  b.view[0] = 2;
  const m = await new SessionMemory(t).map(4095n, 2, false);
  assert.deepEqual(m.segments.map((s) => [...s]), [[1], [2]]);
  await m.release();
});

Deno.test("overlapping maps are refused with EEXIST, exact unmap only", () => {
  const t = new DmaTable();
  t.map(0x1000n, 0x2000n, 0n, RW, undefined);
  assert.equal(errnoOf(() => t.map(0x2000n, 0x1000n, 0n, RW, undefined)), Errno.EEXIST);
  assert.equal(errnoOf(() => t.map(0n, 0x1001n, 0n, RW, undefined)), Errno.EEXIST);
  t.map(0x3000n, 0x1000n, 0n, RW, undefined); // adjacent is fine
  assert.equal(errnoOf(() => t.unmap(0x1000n, 0x1000n)), Errno.ENOENT);
  t.unmap(0x1000n, 0x2000n);
  assert.equal(t.find(0x1500n), undefined);
  assert.equal(errnoOf(() => t.map(0n, 0n, 0n, RW, undefined)), Errno.EINVAL);
  assert.equal(errnoOf(() => t.map(0n, 16n, 0n, 4, undefined)), Errno.EINVAL);
});

Deno.test("permissions: no writes into read-only maps, unmapped access faults", async () => {
  const t = new DmaTable();
  const { fd } = memfd(4096);
  t.map(0n, 4096n, 0n, DmaMapFlags.READ, fd);
  const mem = new SessionMemory(t);
  const readOnly = (e: unknown) => e instanceof GuestFault && e.errno === Errno.EROFS;
  await assert.rejects(() => mem.map(0n, 4, true), readOnly);
  await assert.rejects(() => mem.write(0n, new Uint8Array(1)), readOnly);
  await assert.rejects(() => mem.read(4096n, new Uint8Array(1)), unmapped);
  const m = await mem.map(0n, 16, false);
  await m.release();
});

Deno.test("a map without an fd fails cleanly while message DMA is unavailable", async () => {
  const t = new DmaTable();
  t.map(0n, 4096n, 0n, RW, undefined);
  const mem = new SessionMemory(t);
  await assert.rejects(() => mem.read(0n, new Uint8Array(4)), unmapped);
});

Deno.test("unmap while in use: memory stays until the last user releases it", async () => {
  const t = new DmaTable();
  const { fd, view } = memfd(4096);
  const r = t.map(0n, 4096n, 0n, RW, fd);
  const mem = new SessionMemory(t);
  const m = await mem.map(0n, 16, true);
  m.segments[0][1] = 7; // reaches the client's memory while mapped
  assert.equal(view[1], 7);
  t.unmap(0n, 4096n);
  assert.equal(r.live, false);
  assert.equal(r.refs, 1);
  m.segments[0][0] = 9; // still mapped: no crash
  assert.equal(m.segments[0][1], 0, "the holder now sees private zero pages");
  assert.equal(view[0], 0, "nothing reaches the client's memory after the unmap");
  await m.release();
  assert.equal(r.refs, 0);
  await assert.rejects(() => mem.map(0n, 16, true), unmapped);
});

Deno.test("an fd that can shrink is not mmapped (message-based); a sealable memfd gets sealed", () => {
  const t = new DmaTable();
  const plain = check("memfd_create", libc.memfd_create(cstr("p"), C.MFD_CLOEXEC));
  check("ftruncate", libc.ftruncate(plain, 4096n));
  const r = t.map(0n, 4096n, 0n, DmaMapFlags.READ, plain);
  assert.equal(r.view, undefined);
  assert.equal(r.unsealed, true);
  const { fd } = memfd(4096);
  const keep = check("dup", libc.fcntl(fd, C.F_DUPFD_CLOEXEC, 0));
  const s = t.map(0x1000n, 4096n, 0n, DmaMapFlags.READ, fd);
  assert.ok(s.view);
  assert.equal(libc.ftruncate(keep, 0n), -1, "sealed against shrinking");
  libc.close(keep);
  t.clear();
});

Deno.test("overlap checks at their exact limit: one byte into the previous or the next map", () => {
  const t = new DmaTable();
  t.map(0x2000n, 0x1000n, 0n, RW, undefined); // [0x2000, 0x3000)
  const overlap = (iova: bigint, size: bigint) =>
    errnoOf(() => t.map(iova, size, 0n, RW, undefined));
  assert.equal(overlap(0x1001n, 0x1000n), Errno.EEXIST, "last byte on the map's first");
  assert.equal(overlap(0x2fffn, 0x1000n), Errno.EEXIST, "first byte on the map's last");
  // Touching without overlapping is fine on both sides.
  t.map(0x1000n, 0x1000n, 0n, RW, undefined);
  t.map(0x3000n, 0x1000n, 0n, RW, undefined);
  assert.equal(t.regions.length, 3);
  // And between two maps, a one-byte overlap with either neighbour is refused.
  t.unmap(0x3000n, 0x1000n);
  t.map(0x4000n, 0x1000n, 0n, RW, undefined);
  assert.equal(overlap(0x2fffn, 0x1001n), Errno.EEXIST);
  assert.equal(overlap(0x3000n, 0x1001n), Errno.EEXIST);
  t.map(0x3000n, 0x1000n, 0n, RW, undefined);
  t.clear();
});

Deno.test("a read spanning message-based and mmapped maps survives a DMA_UNMAP while it waits", async () => {
  const t = new DmaTable();
  t.map(0n, 4096n, 0n, RW, undefined); // message-based (no fd)
  const { fd, view } = memfd(4096);
  view.fill(7);
  t.map(4096n, 4096n, 0n, RW, fd); // mmapped, right behind it
  let answer!: () => void;
  const mem = new SessionMemory(t, {
    // The DMA_READ of the first piece waits for the client's reply...
    read: (_addr, dst) => new Promise<void>((r) => (answer = () => r(dst.fill(1) && undefined))),
    write: () => Promise.resolve(),
    settled: () => undefined,
    acquire: (n) => Promise.resolve(new Uint8Array(n)),
    releaseBuffer: () => {},
    maxBuffer: 1 << 20,
  });
  const dst = new Uint8Array(32);
  const reading = mem.read(4096n - 16n, dst);
  // ...meanwhile the client unmaps the mmapped piece (and its DMA_UNMAP is answered)...
  t.unmap(4096n, 4096n);
  answer();
  // ...and the read goes on into memory it still holds, never the freed view (that was a
  // SIGSEGV), nor the client's pages: they are cut off.
  await reading;
  assert.deepEqual([...dst.subarray(0, 16)], new Array(16).fill(1));
  assert.deepEqual([...dst.subarray(16)], new Array(16).fill(0));
  t.clear();
});
