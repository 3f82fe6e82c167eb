/**
 * Guest RAM a hostile client shrinks under vfud: touching an mmapped page past the end of its
 * file raises SIGBUS, which would kill the daemon. vfud mmaps only memory that cannot shrink (a
 * memfd sealed against it, as QEMU's memory-backend-memfd is by default; it adds the seal itself
 * when the memfd allows sealing) and reaches anything else with DMA_READ/DMA_WRITE messages.
 */
import assert from "node:assert/strict";
import { ArrayRam, GuestArena, VirtioBlkDriver } from "../../client/mod.ts";
import { ReqType } from "../../spec/virtio_blk.ts";
import { check, closeFd, cstr, errno, libc } from "../../sys/ffi.ts";
import { C } from "../../sys/layout.ts";
import { Errno } from "../../sys/errno.ts";
import { assertServesFreshClient, connect, startVfud } from "./helpers.ts";

const RAM = 4 << 20;

function memfd(flags: number): number {
  const fd = check("memfd_create", libc.memfd_create(cstr("hostile"), C.MFD_CLOEXEC | flags));
  check("ftruncate", libc.ftruncate(fd, BigInt(RAM)));
  return fd;
}

Deno.test("hostile memfd: a sealable memfd gets F_SEAL_SHRINK (the client cannot shrink it)", async () => {
  await using v = await startVfud();
  const fd = memfd(C.MFD_ALLOW_SEALING);
  const ptr = libc.mmap(null, BigInt(RAM), C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0n);
  assert.ok(ptr !== null);
  const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, RAM));
  let shrunk = false;
  try {
    await using c = await connect(v, { timeoutMs: 10_000 });
    await c.dmaMap({ iova: 0n, size: BigInt(RAM), fd, backing: bytes });
    const drv = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, bytes) });
    try {
      const head = drv.enqueue({ type: ReqType.IN, sector: 0n, readLength: 4096 });
      shrunk = libc.ftruncate(fd, 0n) === 0;
      if (shrunk) {
        // The pages are gone: neither side may touch them now. Kick and see vfud die.
        await drv.kick();
        await c.getInfo({ timeoutMs: 5_000 }).catch(() => {});
        assert.fail(`the client shrank mapped guest RAM (vfud ${v.exited ? "died" : "lived"})`);
      }
      assert.equal(errno(), Errno.EPERM, "sealed against shrinking");
      await drv.kick();
      const done = await drv.wait(head);
      assert.equal(done.status, 0);
      assert.deepEqual(done.data, v.initialImage!.subarray(0, 4096));
      assert.equal(c.dmaStats.reads, 0, "zero-copy: vfud mmapped it");
    } finally {
      if (!shrunk) drv.close();
    }
  } finally {
    if (!shrunk) libc.munmap(ptr, BigInt(RAM));
    closeFd(fd);
  }
  await assertServesFreshClient(v);
});

Deno.test("hostile memfd: an unsealable memfd is reached by DMA messages (shrinking it is harmless)", async () => {
  await using v = await startVfud();
  const fd = memfd(0); // no MFD_ALLOW_SEALING: it can never be sealed
  // The client never maps the memfd: it serves DMA messages from an array, so shrinking the
  // memfd cannot hurt the test process.
  const ram = new ArrayRam(RAM);
  try {
    await using c = await connect(v, { timeoutMs: 10_000 });
    await c.dmaMap({ iova: 0n, size: BigInt(RAM), fd, backing: ram.bytes });
    assert.equal(libc.ftruncate(fd, 0n), 0, "nothing stops the client from shrinking it");
    const drv = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram.bytes) });
    try {
      const done = await drv.read(0n, 8);
      assert.deepEqual(done, v.initialImage!.subarray(0, 4096));
    } finally {
      drv.close();
    }
    assert.ok(c.dmaStats.reads > 0, "guest memory went through DMA_READ");
  } finally {
    closeFd(fd);
  }
  await assertServesFreshClient(v);
});
