/**
 * Dirty page logging (DEVICE_FEATURE DMA_LOGGING_START/STOP/REPORT) against a real vfud: the
 * pages the device wrote while logging (data read from disk, status bytes, used-ring entries) are
 * exactly the pages reported, in both DMA modes; reports clear, ranges restrict, page sizes and
 * the negotiated limits are enforced with errors.
 */
import assert from "node:assert/strict";
import {
  ArrayRam,
  DeviceMigration,
  dirtyPages,
  Errno,
  GuestArena,
  type GuestRam,
  MemfdRam,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { ReqType } from "../../spec/virtio_blk.ts";
import { DmaLoggingReportFeature, Feature, FeatureFlags } from "../../protocol/feature.ts";
import { assertErrno, connect, startVfud } from "./helpers.ts";

const MiB = 1 << 20;
const RAM = 16 * MiB;
const PAGE = 4096n;

function pagesOf(addr: bigint, len: number, page = PAGE): number[] {
  const out: number[] = [];
  for (let p = addr / page; p <= (addr + BigInt(len) - 1n) / page; p++) out.push(Number(p));
  return out;
}

function sorted(s: Iterable<number>): number[] {
  return [...new Set(s)].sort((a, b) => a - b);
}

/**
 * Runs reads into `reads` (guest addresses the device writes) and writes from `writes` (the
 * device only reads them) as one batch; returns every page the device wrote: data, status bytes,
 * used-ring entries and the used index.
 */
async function batch(
  d: VirtioBlkDriver,
  reads: [bigint, number][],
  writes: [bigint, number][] = [],
): Promise<number[]> {
  const pages: number[] = [];
  const used = d.rings.used;
  let slot = d.lastUsed;
  const heads: number[] = [];
  for (const [addr, len] of reads) {
    heads.push(d.enqueue({ type: ReqType.IN, sector: 8n, readLength: len, dataAddr: addr }));
    pages.push(...pagesOf(addr, len));
  }
  for (const [addr, len] of writes) {
    heads.push(
      d.enqueue({ type: ReqType.OUT, sector: 4000n, data: new Uint8Array(len), dataAddr: addr }),
    );
  }
  for (const h of heads) {
    pages.push(...pagesOf(d.placement(h).status, 1));
    pages.push(...pagesOf(used + 4n + 8n * BigInt(slot++ % d.queueSize), 8));
  }
  pages.push(...pagesOf(used + 2n, 2));
  await d.kick();
  for (const h of heads) assert.equal((await d.wait(h)).status, 0);
  return sorted(pages);
}

async function dirtyLogging(mode: "memfd" | "array"): Promise<void> {
  await using v = await startVfud();
  const ram: GuestRam = mode === "array" ? new ArrayRam(RAM) : new MemfdRam(RAM);
  const client = await connect(v);
  try {
    await client.dmaMap({ iova: 0n, size: BigInt(RAM), fd: ram.fd, backing: ram.bytes });
    const d = await VirtioBlkDriver.create(client, {
      arena: new GuestArena(0n, ram.bytes.subarray(0, MiB)),
      queueSize: 64,
    });
    const mig = new DeviceMigration(client);
    await batch(d, [[0x400000n, 4096]]); // before logging: not tracked
    await assertErrno(mig.dirtyReport(0n, BigInt(RAM), PAGE), Errno.EINVAL, "report unstarted");
    assert.equal(await mig.startDirtyLog(PAGE), PAGE);
    await assertErrno(mig.startDirtyLog(PAGE), Errno.EBUSY, "started twice");

    // Exactly the pages written: reads spanning pages, unaligned, and writes (device reads only).
    const want = await batch(
      d,
      [[0x400000n, 3 * 4096 + 512], [0x800123n, 512], [0x9ff000n + 4000n, 1024]],
      [[0xb00000n, 8192], [0xb80000n, 512]],
    );
    const got = dirtyPages(await mig.dirtyReport(0n, BigInt(RAM), PAGE));
    assert.deepEqual(got, want);
    assert.ok(got.includes(0xa00000 / 4096), "a read across a page boundary dirties both");
    assert.ok(!got.includes(0xb00000 / 4096), "pages the device only read are clean");
    assert.deepEqual(dirtyPages(await mig.dirtyReport(0n, BigInt(RAM), PAGE)), [], "cleared");

    // Coarser report pages: 2 MiB per bit.
    const coarse = await batch(d, [[0x600000n, 4096]]);
    const bits = dirtyPages(await mig.dirtyReport(0n, BigInt(RAM), 2n * BigInt(MiB)));
    assert.deepEqual(bits, sorted(coarse.map((p) => Math.floor(p * 4096 / (2 * MiB)))));

    // A report of a part clears only that part.
    const part = await batch(d, [[0xc00000n, 4096], [0x500000n, 4096]]);
    const hi = dirtyPages(await mig.dirtyReport(0xc00000n, 4n * BigInt(MiB), PAGE));
    assert.deepEqual(hi, [0]); // 0xc00000 is page 0 of that range
    const rest = dirtyPages(await mig.dirtyReport(0n, BigInt(RAM), PAGE));
    assert.deepEqual(rest, part.filter((p) => p !== 0xc00000 / 4096));

    // Logged ranges only.
    await mig.stopDirtyLog();
    await assertErrno(mig.dirtyReport(0n, BigInt(RAM), PAGE), Errno.EINVAL, "report stopped");
    await mig.startDirtyLog(PAGE, [{ iova: 0x400000n, length: BigInt(MiB) }]);
    await batch(d, [[0x400000n, 4096], [0x800000n, 4096]]);
    assert.deepEqual(dirtyPages(await mig.dirtyReport(0n, BigInt(RAM), PAGE)), [0x400]);

    // Limits and malformed requests.
    await assertErrno(mig.dirtyReport(0n, BigInt(RAM), 2048n), Errno.EINVAL, "finer than pgsize");
    await assertErrno(mig.dirtyReport(0x800n, PAGE, PAGE), Errno.EINVAL, "unaligned range");
    const huge = PAGE * 8n * BigInt(MiB + 8); // one bitmap byte more than max_bitmap_size
    await assertErrno(mig.dirtyReport(0n, huge, PAGE), Errno.E2BIG, "bitmap over max_bitmap_size");
    const req = DmaLoggingReportFeature.encodeRequest({
      iova: 0n,
      length: 64n * PAGE,
      pageSize: PAGE,
    });
    await assertErrno(
      mig.feature(Feature.DMA_LOGGING_REPORT, FeatureFlags.GET, req, { argsz: 8 + 24 }),
      Errno.EINVAL,
      "argsz without room for the bitmap",
    );
    await assertErrno(mig.startDirtyLog(3000n), Errno.EBUSY, "still started");
    await mig.stopDirtyLog();
    await assertErrno(mig.startDirtyLog(3000n), Errno.EINVAL, "page size not a power of two");
    await assertErrno(
      mig.startDirtyLog(PAGE, [{ iova: 0n, length: 0x2000n }, { iova: 0x1000n, length: PAGE }]),
      Errno.EINVAL,
      "overlapping ranges",
    );
    assert.equal(await mig.startDirtyLog(512n), PAGE, "a finer hint is raised to pgsize");
    assert.deepEqual(client.violations, []);
    d.close();
  } finally {
    await client.close();
    ram.close();
  }
}

Deno.test("dirty logging: exactly the pages device DMA wrote are reported (fd-backed memory)", () =>
  dirtyLogging("memfd"));

Deno.test("dirty logging: exactly the pages device DMA wrote are reported (message DMA)", () =>
  dirtyLogging("array"));
