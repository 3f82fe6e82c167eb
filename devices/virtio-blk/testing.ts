/**
 * Test rig of the block device: fake guest memory, a test driver and request helpers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Buf, type DriverQueue, TestDriver } from "../virtio/testing/driver.ts";
import {
  FakeContext,
  FakeGuestMemory,
  type FakeMemoryOptions,
} from "../virtio/testing/fake_memory.ts";
import { settle } from "../virtio/testing/setup.ts";
import type { VirtioPciDevice } from "../virtio/transport.ts";
import { type BlockBackend, MemoryBackend } from "./backend.ts";
import { createVirtioBlk, type VirtioBlkOptions } from "./device.ts";
import { type Aio, type AioDone, type AioKind, openAio } from "../../sys/aio.ts";
import type { EventLoop } from "../../sys/event_loop.ts";
import { withLoop } from "../../sys/testing.ts";

/** Rings of queue 0. */
export const RING = 0x1000;
/** Request header. */
export const HDR = 0x8000;
/** Status byte. */
export const STATUS = 0x8100;
/** Data buffers. */
export const BUF = 0x20000;

/** Everything a block test touches. */
export interface BlkRig {
  dev: VirtioPciDevice;
  backend: BlockBackend;
  mem: FakeGuestMemory;
  ctx: FakeContext;
  drv: TestDriver;
  errors: unknown[];
}

/** A block device over a 1 MiB {@link MemoryBackend} (unless given) on fake memory. */
export function blkRig(
  opts: Partial<VirtioBlkOptions> & { mem?: Partial<FakeMemoryOptions>; readonly?: boolean } = {},
): BlkRig {
  const errors: unknown[] = [];
  const backend = opts.backend ?? new MemoryBackend(1 << 20, { readonly: opts.readonly });
  const dev = createVirtioBlk({
    ...opts,
    backend,
    transport: { onError: (e) => errors.push(e), ...opts.transport },
  });
  const mem = new FakeGuestMemory({ size: 1 << 21, ...opts.mem });
  const ctx = new FakeContext(mem);
  dev.attach(ctx);
  return { dev, backend, mem, ctx, drv: new TestDriver(dev, mem), errors };
}

/** Negotiates `features` (default all offered), sets up queue 0, DRIVER_OK. */
export function blkUp(rig: BlkRig, features?: bigint, size?: number): DriverQueue {
  if (!rig.drv.negotiate(features ?? rig.dev.offered)) throw new Error("FEATURES_OK refused");
  const q = rig.drv.setupQueue(0, RING, size);
  rig.drv.driverOk();
  return q;
}

/** Writes a request header (type, reserved, sector) at `at`. */
export function writeHeader(mem: FakeGuestMemory, type: number, sector: bigint, at = HDR): void {
  const v = new DataView(mem.ram.buffer, at, 16);
  v.setUint32(0, type, true);
  v.setUint32(4, 0, true);
  v.setBigUint64(8, sector, true);
}

/** Result of one request. */
export interface Done {
  status: number;
  len: number;
}

/** Sends `bufs` as one chain, waits for completion and returns status byte and used length. */
export async function sendChain(
  rig: BlkRig,
  q: DriverQueue,
  bufs: Buf[],
  statusAt = STATUS,
  indirectAt?: number,
): Promise<Done> {
  rig.mem.ram[statusAt] = 0xee;
  const head = q.send(bufs, indirectAt);
  await settle(rig);
  const used = q.takeUsed();
  assert.equal(used.length, 1, "one used element");
  assert.equal(used[0].id, head);
  return { status: rig.mem.ram[statusAt], len: used[0].len };
}

/** A standard request: header, `data` buffers, status byte. */
export function request(
  rig: BlkRig,
  q: DriverQueue,
  type: number,
  sector: bigint,
  data: Buf[],
  indirectAt?: number,
): Promise<Done> {
  writeHeader(rig.mem, type, sector);
  const bufs = [{ addr: HDR, len: 16 }, ...data, { addr: STATUS, len: 1, write: true }];
  return sendChain(rig, q, bufs, STATUS, indirectAt);
}

/** `n` bytes of a recognizable pattern. */
export function pattern(n: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

/** An engine whose operations can be held back before they reach the real one. */
export class GatedAio implements Aio {
  readonly kind;
  /** Every operation in the order it was issued: "readv@off", "writev@off", "fsync"... */
  readonly log: string[] = [];
  readonly #inner: Aio;
  #hold: ((what: string) => boolean) | undefined;
  readonly #held: (() => void)[] = [];

  constructor(inner: Aio) {
    this.#inner = inner;
    this.kind = inner.kind;
  }

  get inFlight(): number {
    return this.#inner.inFlight + this.#held.length;
  }

  /** Holds every operation `pred` matches until {@link release}. */
  holdWhen(pred: ((what: string) => boolean) | undefined): void {
    this.#hold = pred;
  }

  /** Lets the held operations go to the engine. */
  release(): void {
    for (const go of this.#held.splice(0)) go();
  }

  #run(what: string, go: () => void): void {
    this.log.push(what);
    if (this.#hold?.(what)) this.#held.push(go);
    else go();
  }

  readv(fd: number, segs: readonly Uint8Array[], offset: bigint, done: AioDone): void {
    this.#run(`readv@${offset}`, () => this.#inner.readv(fd, segs, offset, done));
  }
  writev(fd: number, segs: readonly Uint8Array[], offset: bigint, done: AioDone): void {
    this.#run(`writev@${offset}`, () => this.#inner.writev(fd, segs, offset, done));
  }
  fsync(fd: number, datasync: boolean, done: AioDone): void {
    this.#run("fsync", () => this.#inner.fsync(fd, datasync, done));
  }
  fallocate(fd: number, mode: number, offset: bigint, len: bigint, done: AioDone): void {
    this.#run(`fallocate@${offset}`, () => this.#inner.fallocate(fd, mode, offset, len, done));
  }
  close(): void {
    this.#inner.close();
  }
}

/** A running loop with an engine, stopped (bounded) at the end. */
export function withAioLoop(
  kind: AioKind,
  body: (loop: EventLoop, aio: GatedAio) => Promise<void>,
): Promise<void> {
  return withLoop(async (loop) => {
    const aio = new GatedAio(openAio(loop, { kind, depth: 16 }));
    try {
      await body(loop, aio);
    } finally {
      aio.close();
    }
  });
}
