/**
 * The block device over a real image file and an asynchronous engine (io_uring, I/O threads),
 * through the virtio path: requests overlap, FLUSH orders after earlier writes without stalling
 * anything else, and each queue of a multiqueue device interrupts on its own vector.
 */
import assert from "node:assert/strict";
import { CC } from "../virtio/testing/driver.ts";
import { BlkStatus, ReqType } from "../../spec/virtio_blk.ts";
import { FileBackend } from "./file_backend.ts";
import { blkRig, blkUp, BUF, type GatedAio, withAioLoop, writeHeader } from "./testing.ts";

const SECTORS = 2048;

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function image(): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "vfud-blk-async-", suffix: ".img" });
  await Deno.writeFile(path, new Uint8Array(SECTORS * 512).fill(0x11));
  return path;
}

/** A two-queue device over `path` driven by `aio`; queue 0 and 1 set up with 16 entries. */
function twoQueues(path: string, aio: GatedAio) {
  const backend = FileBackend.open({ path, readonly: false, aio });
  const rig = blkRig({ backend, numQueues: 2 });
  rig.ctx.msix = true;
  const q0 = blkUp(rig, undefined, 16);
  rig.drv.write(CC.QUEUE_SELECT, 2, 0);
  rig.drv.write(CC.QUEUE_MSIX_VECTOR, 2, 1);
  const q1 = rig.drv.setupQueue(1, 0x6000, 16, 2);
  let slot = 0;
  /** A request whose header, data and status sit in their own slot of guest RAM. */
  const send = (
    q: typeof q0,
    type: number,
    sector: bigint,
    data?: { len: number; write: boolean },
  ) => {
    const at = BUF + 0x10000 * slot++;
    writeHeader(rig.mem, type, sector, at);
    rig.mem.ram[at + 16] = 0xff;
    const head = q.send([
      { addr: at, len: 16 },
      ...(data ? [{ addr: at + 0x1000, len: data.len, write: data.write }] : []),
      { addr: at + 16, len: 1, write: true },
    ]);
    return { head, status: () => rig.mem.ram[at + 16], data: at + 0x1000 };
  };
  return { backend, rig, q0, q1, send };
}

for (const kind of ["io_uring", "threads"] as const) {
  Deno.test(`virtio-blk (${kind}): a request is not held back by an earlier one in flight`, async () => {
    const path = await image();
    try {
      await withAioLoop(kind, async (_loop, aio) => {
        const { backend, q0, send } = twoQueues(path, aio);
        aio.holdWhen((w) => w === "readv@0");
        const slow = send(q0, ReqType.IN, 0n, { len: 4096, write: true });
        const fast = send(q0, ReqType.IN, 16n, { len: 4096, write: true });
        await until(() => fast.status() === BlkStatus.OK, "the second read");
        assert.equal(slow.status(), 0xff, "the first read is still in flight");
        assert.equal(q0.usedIdx(), 1);
        aio.release();
        await until(() => slow.status() === BlkStatus.OK, "the first read");
        assert.equal(q0.usedIdx(), 2);
        backend.close();
      });
    } finally {
      await Deno.remove(path);
    }
  });

  Deno.test(`virtio-blk (${kind}): FLUSH waits for an earlier write of another queue, nothing waits for FLUSH`, async () => {
    const path = await image();
    try {
      await withAioLoop(kind, async (_loop, aio) => {
        const { backend, rig, q0, q1, send } = twoQueues(path, aio);
        aio.holdWhen((w) => w === "writev@8192");
        const write = send(q1, ReqType.OUT, 16n, { len: 4096, write: false });
        await until(() => aio.log.includes("writev@8192"), "the write to reach the engine");
        const flush = send(q0, ReqType.FLUSH, 0n);
        // other requests go on, on both queues
        const read0 = send(q0, ReqType.IN, 100n, { len: 512, write: true });
        const read1 = send(q1, ReqType.IN, 200n, { len: 512, write: true });
        await until(
          () => read0.status() === BlkStatus.OK && read1.status() === BlkStatus.OK,
          "the reads",
        );
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(flush.status(), 0xff, "FLUSH completed before the write it must cover");
        assert.ok(!aio.log.includes("fsync"), "fdatasync issued before the earlier write ended");
        aio.release();
        await until(() => flush.status() === BlkStatus.OK, "the flush");
        assert.equal(write.status(), BlkStatus.OK);
        assert.ok(aio.log.indexOf("fsync") > aio.log.indexOf("writev@8192"));
        // MSI-X: queue 0 on vector 1, queue 1 on vector 2
        assert.ok(rig.ctx.triggers.includes(1) && rig.ctx.triggers.includes(2));
        backend.close();
      });
    } finally {
      await Deno.remove(path);
    }
  });
}
