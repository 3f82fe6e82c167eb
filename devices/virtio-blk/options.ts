/**
 * The `--device virtio-blk,...` entry: its options (names as QEMU users know them) and the
 * factory.
 *
 *   virtio-blk,file=IMG[,readonly=on][,serial=S][,aio=io_uring|threads][,direct=on]
 *             [,discard=off][,write-zeroes=off][,num-queues=N][,queue-size=N]
 *
 * @module
 */
import type { Device, DeviceEnv } from "../device.ts";
import { boolOption, type DeviceOptions, type DeviceOptionSpec, uintOption } from "../options.ts";
import { MAX_QUEUE_SIZE } from "../../spec/virtio.ts";
import { openAio } from "../../sys/aio.ts";
import { logger } from "../../sys/log.ts";
import { ID_BYTES } from "../../spec/virtio_blk.ts";
import { createVirtioBlk } from "./device.ts";
import { FileBackend } from "./file_backend.ts";

/** Most request queues (one MSI-X vector each, plus the configuration vector). */
export const MAX_QUEUES = 64;

function checkQueues(v: string): void {
  const n = Number(v);
  if (n < 1 || n > MAX_QUEUES) throw new Error(`num-queues=${v}: 1 to ${MAX_QUEUES}`);
}

function checkQueueSize(v: string): void {
  const n = Number(v);
  if (n < 4 || n > MAX_QUEUE_SIZE || (n & (n - 1)) !== 0) {
    throw new Error(`queue-size=${v}: a power of two from 4 to ${MAX_QUEUE_SIZE}`);
  }
}

/** Option table of the virtio-blk device type. */
export const VIRTIO_BLK_OPTIONS: Record<string, DeviceOptionSpec> = {
  file: {
    help: "raw image file (must exist; its size is the disk size)",
    required: true,
    value: "path",
  },
  readonly: { help: "on|off: expose the disk read-only (VIRTIO_BLK_F_RO)", value: "bool" },
  serial: {
    help: `serial number reported by GET_ID (up to ${ID_BYTES} bytes)`,
    check(v) {
      const n = new TextEncoder().encode(v).length;
      if (n > ID_BYTES) throw new Error(`serial=${v}: ${n} bytes, at most ${ID_BYTES}`);
    },
  },
  aio: {
    help: "io_uring|threads: the asynchronous I/O engine (default io_uring, I/O threads where " +
      "the kernel refuses io_uring)",
    value: ["io_uring", "threads"],
  },
  direct: {
    help: "on|off: open the image with O_DIRECT, bypassing the host page cache",
    value: "bool",
  },
  discard: {
    help: "on|off: offer DISCARD, punching holes in the image (default on)",
    value: "bool",
  },
  "write-zeroes": { help: "on|off: offer WRITE_ZEROES (default on)", value: "bool" },
  "num-queues": {
    help: `request queues, 1-${MAX_QUEUES}, one MSI-X vector each (default 1)`,
    value: "uint",
    check: checkQueues,
  },
  "queue-size": {
    help: "entries per queue, a power of two from 4 (default 256)",
    value: "uint",
    check: checkQueueSize,
  },
};

/** "10 GiB (10737418240 bytes)", "1000 bytes". */
export function formatBytes(n: bigint): string {
  const units: [string, bigint][] = [
    ["TiB", 1n << 40n],
    ["GiB", 1n << 30n],
    ["MiB", 1n << 20n],
    ["KiB", 1n << 10n],
  ];
  for (const [unit, size] of units) {
    if (n >= size) {
      const v = Number(n) / Number(size);
      const text = Number.isInteger(v) ? String(v) : v.toFixed(1);
      return `${text} ${unit} (${n} bytes)`;
    }
  }
  return `${n} bytes`;
}

/** A disk image the guest cannot use whole deserves a word: empty, or not whole sectors. */
function warnAboutImageSize(file: string, size: bigint): void {
  const log = logger("device", "virtio-blk");
  if (size < 512n) {
    log.warning("image {file} is {size} bytes: the guest sees an empty disk (0 sectors)", {
      file,
      size,
    });
  } else if (size % 512n) {
    log.warning(
      "image {file} is {size} bytes, not a multiple of 512: its last {rest} bytes are not served",
      { file, size, rest: size % 512n },
    );
  }
}

/**
 * Creates the device. With the serving loop (`env.loop`) the image is driven asynchronously
 * through io_uring or I/O threads; without one (tools, tests) synchronously.
 */
export function createVirtioBlkFromOptions(
  opts: DeviceOptions,
  env: Partial<DeviceEnv> = {},
): Device {
  const file = opts.get("file")!;
  const readonly = boolOption(opts, "readonly");
  const direct = boolOption(opts, "direct");
  const numQueues = uintOption(opts, "num-queues", 1);
  const queueSize = uintOption(opts, "queue-size", 256);
  const log = logger("device", "virtio-blk");
  const aio = env.loop
    ? openAio(env.loop, {
      kind: (opts.get("aio") as "io_uring" | "threads" | undefined) ?? "auto",
      depth: Math.min(4096, numQueues * queueSize),
      onFallback: (why) => log.warning("io_uring refused ({why}): I/O threads instead", { why }),
    })
    : undefined;
  let backend: FileBackend;
  try {
    backend = FileBackend.open({ path: file, readonly, direct, aio });
  } catch (e) {
    aio?.close();
    throw e;
  }
  warnAboutImageSize(file, backend.fileSize);
  const serial = opts.get("serial");
  const device = createVirtioBlk({
    backend,
    ...(serial !== undefined ? { serial } : {}),
    numQueues,
    queueSize,
    discard: boolOption(opts, "discard", true),
    writeZeroes: boolOption(opts, "write-zeroes", true),
    transport: { loop: env.loop },
  });
  // what differs from the defaults (io_uring, page cache, one queue)
  const io = [
    ...(aio?.kind === "threads" ? ["I/O threads"] : []),
    ...(direct ? [`O_DIRECT (block ${backend.blockSize})`] : []),
    ...(numQueues > 1 ? [`${numQueues} queues`] : []),
  ];
  device.summary = `${file}: ${formatBytes(backend.size)}, ` +
    `${readonly ? "read-only" : "read-write"}${serial ? `, serial ${serial}` : ""}` +
    io.map((x) => `, ${x}`).join("");
  return device;
}

/** The device-table entry (devices/mod.ts). */
export const virtioBlkDeviceType = {
  name: "virtio-blk",
  description: "virtio 1.x block device (modern virtio-pci, MSI-X) backed by a raw image file",
  options: VIRTIO_BLK_OPTIONS,
  create: createVirtioBlkFromOptions,
};
