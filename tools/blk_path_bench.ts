/**
 * CPU cost of the virtio-blk request path inside vfud, without a socket or a VMM: the device on
 * guest memory that is an mmapped memfd (as with QEMU's shared RAM), driven by the test driver
 * of devices/virtio, requests one at a time (QD1) or in batches. Prints requests per second and
 * µs of CPU per request, for an in-memory backend (the virtio and DMA path alone) and for an
 * image file through io_uring.
 *
 * Usage: deno run -A tools/blk_path_bench.ts [--n=20000] [--depth=1] [--size=4096]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createVirtioBlk } from "../devices/virtio-blk/device.ts";
import { type BlockBackend, MemoryBackend } from "../devices/virtio-blk/backend.ts";
import { FileBackend } from "../devices/virtio-blk/file_backend.ts";
import { ReqType } from "../spec/virtio_blk.ts";
import { TestDriver } from "../devices/virtio/testing/driver.ts";
import { FakeContext, type FakeGuestMemory } from "../devices/virtio/testing/fake_memory.ts";
import { DmaTable } from "../dma/table.ts";
import { SessionMemory } from "../dma/memory.ts";
import { check, cstr, libc } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";
import { EventLoop } from "../sys/event_loop.ts";
import { openAio } from "../sys/aio.ts";

const RAM = 16 << 20;

function cpuSeconds(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function run(
  name: string,
  backend: BlockBackend,
  n: number,
  depth: number,
  size: number,
) {
  const fd = check(
    "memfd_create",
    libc.memfd_create(cstr("bench-ram"), C.MFD_CLOEXEC | 2 /* MFD_ALLOW_SEALING */),
  );
  check("ftruncate", libc.ftruncate(fd, BigInt(RAM)));
  const table = new DmaTable();
  const region = table.map(0n, BigInt(RAM), 0n, 3, fd);
  const mem = new SessionMemory(table);
  let wake: (() => void) | undefined;
  const ctx = new (class extends FakeContext {
    override trigger(v: number): void {
      super.trigger(v);
      this.triggers.length = 0;
      wake?.();
    }
  })(mem);
  const dev = createVirtioBlk({ backend, queueSize: 256 });
  dev.attach(ctx);
  const drv = new TestDriver(dev, { ram: region.view! } as unknown as FakeGuestMemory);
  drv.negotiate(dev.offered);
  const q = drv.setupQueue(0, 0x1000, 256);
  drv.driverOk();
  const ram = region.view!;
  // each request: header, `size` bytes in 4 KiB data buffers, status (an indirect table of
  // descriptors, as Linux's virtio-blk driver sends them)
  const stride = 0x1000 + size + 0x1000;
  const hdrs = Array.from({ length: depth }, (_, i) => 0x100000 + i * stride);
  for (const h of hdrs) {
    const v = new DataView(ram.buffer, ram.byteOffset + h, 16);
    v.setUint32(0, ReqType.IN, true);
    v.setBigUint64(8, BigInt(((h - 0x100000) / stride) * (size / 512)), true);
  }
  const once = async () => {
    const done = new Promise<void>((r) => wake = r);
    for (const [i, h] of hdrs.entries()) {
      const bufs = [{ addr: h, len: 16 }];
      for (let off = 0; off < size; off += 4096) {
        bufs.push({ addr: h + 0x1000 + off, len: 4096, write: true } as (typeof bufs)[0]);
      }
      bufs.push({ addr: h + 16, len: 1, write: true } as (typeof bufs)[0]);
      const head = q.addChain(bufs, 0x80000 + i * 0x1000);
      q.submit(head);
    }
    q.kick();
    let used = 0;
    while (used < depth) {
      await done;
      used += q.takeUsed().length;
      if (used < depth) await new Promise<void>((r) => wake = r);
    }
  };
  for (let i = 0; i < 2000 / depth; i++) await once(); // warm-up
  const c0 = cpuSeconds();
  const t0 = performance.now();
  for (let i = 0; i < n / depth; i++) await once();
  const s = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds() - c0;
  console.log(
    `${name}, ${size >> 10} KiB, QD${depth}: ${Math.round(n / s)} requests/s, ` +
      `${(cpu / n * 1e6).toFixed(1)} µs CPU ` +
      `per request (${(s / n * 1e6).toFixed(1)} µs wall)`,
  );
  dev.close();
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      n: { type: "string", default: "20000" },
      depth: { type: "string", default: "1" },
      size: { type: "string", default: "4096" },
    },
  });
  const n = Number(values.n), depth = Number(values.depth), size = Number(values.size);
  await run("memory backend", new MemoryBackend(64 << 20), n, depth, size);
  const loop = new EventLoop();
  const running = loop.run();
  const path = await Deno.makeTempFile({ suffix: ".img" });
  await Deno.writeFile(path, new Uint8Array(64 << 20).fill(1));
  const aio = openAio(loop, { kind: "io_uring", depth: 256 });
  await run("file, io_uring", FileBackend.open({ path, readonly: false, aio }), n, depth, size);
  loop.stop();
  await running;
  await Deno.remove(path);
}
