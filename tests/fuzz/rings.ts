/**
 * Guest-side fuzzing: random virtqueue and e1000 descriptor-ring contents in guest memory (the
 * guest is as untrusted as the client). Each state is a fresh set of rings, descriptors, indirect
 * tables, request headers, indices and register values, most of them near a boundary (queue
 * size, ring length, 0, u16/u32/u64 maxima, descriptor loops, addresses past the end of RAM);
 * the device is kicked and must settle within a deadline, never throw out of its interface, and
 * after a reset serve a valid request again. Runs on fake guest memory (plain, bounce-buffered
 * or segmented) for speed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DescFlag, Status } from "../../spec/virtio.ts";
import { type DriverQueue } from "../../devices/virtio/testing/driver.ts";
import type { FakeMemoryOptions } from "../../devices/virtio/testing/fake_memory.ts";
import { type BlkRig, blkRig, BUF, HDR, RING, STATUS } from "../../devices/virtio-blk/testing.ts";
import {
  ADDR,
  rd,
  rig as e1000Rig,
  RIG_MAC,
  setupRx,
  setupTx,
  wr,
} from "../../devices/e1000/testing.ts";
import { R, RCTL, TCTL } from "../../spec/e1000.ts";
import type { E1000 } from "../../devices/e1000/device.ts";
import { type Device, quiesce } from "../../devices/device.ts";
import { Rng } from "./rng.ts";

/** Guest RAM of the fake memory (small: states are cheap to write). */
const RAM = 1 << 18;

/** Result of a ring fuzzing run. */
export interface RingStats {
  states: number;
  blk: number;
  e1000: number;
  /** States after which the device reported DEVICE_NEEDS_RESET or stopped a ring (fine). */
  refused: number;
  /** States whose sanity request after the reset failed (must stay 0). */
  broken: number;
}

/** Deadline of one state's settling, in ms. */
const SETTLE_MS = 5_000;

async function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no end within ${SETTLE_MS} ms`)),
      SETTLE_MS,
    );
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A macrotask turn: work queued by the device (microtasks, its own macrotasks) runs. */
function turn(): Promise<void> {
  const { port1, port2 } = new MessageChannel();
  return new Promise((resolve) => {
    port1.onmessage = () => {
      port1.close();
      port2.close();
      resolve();
    };
    port2.postMessage(0);
  });
}

/** Lets queued work run, then waits (bounded) for the device to go idle. */
async function settle(dev: Device, what: string): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await turn();
    await within(quiesce(dev), what);
  }
}

function memOptions(r: Rng): Partial<FakeMemoryOptions> {
  const holes = r.chance(0.3) ? [{ addr: 0x30000, len: 0x1000 }] : [];
  return r.pick([
    { size: RAM, holes },
    { size: RAM, holes, bounce: true, chunkSize: r.pick([64, 512, 4096]) },
    { size: RAM, holes, segmentSize: r.pick([512, 4096]) },
  ]);
}

/** An address that is usually inside RAM, sometimes at or past its end, or wraps. */
function addr(r: Rng): bigint {
  const p = r.float();
  if (p < 0.7) return BigInt(r.int(RAM));
  if (p < 0.8) return BigInt(RAM - r.int(32));
  if (p < 0.9) return 0xffff_ffff_ffff_ffffn - BigInt(r.int(64));
  return r.u64();
}

function len(r: Rng): number {
  return r.pick([0, 1, 15, 16, 17, 512, 4096, r.int(8192), 0x7fff_ffff, 0xffff_ffff, r.u32()]);
}

// ---------------------------------------------------------------------------------------------
// virtio-blk

/** Random descriptors, indirect tables, headers and avail ring over a fresh queue. */
function blkState(r: Rng, rig: BlkRig, q: DriverQueue): void {
  const ram = rig.mem.ram;
  const v = new DataView(ram.buffer);
  const n = q.size;
  // Descriptor table: plausible chains (header, data, status) mixed with garbage and loops.
  for (let i = 0; i < n; i++) {
    const kind = r.float();
    let flags = r.int(8) & (DescFlag.NEXT | DescFlag.WRITE | DescFlag.INDIRECT);
    if (kind < 0.2) flags = r.u32() & 0xffff;
    const next = r.chance(0.8) ? (i + 1) % n : r.chance(0.5) ? i : r.edge(n, 0xffff);
    let a = addr(r), l = len(r);
    if (kind > 0.5) {
      // A well-formed looking request: header / data / status within RAM.
      const slot = i % 3;
      a = BigInt(slot === 0 ? HDR : slot === 1 ? BUF + r.int(0x8000) : STATUS);
      l = slot === 0 ? 16 : slot === 1 ? r.pick([512, 4096, 1]) : 1;
      flags = slot === 2 ? DescFlag.WRITE : DescFlag.NEXT | (r.chance(0.5) ? DescFlag.WRITE : 0);
    }
    if (flags & DescFlag.INDIRECT) {
      // An indirect table somewhere in RAM, itself possibly pointing at tables and loops.
      const table = 0x20000 + r.int(0x10000) * 16 % 0x18000;
      const entries = r.edge(16, 64);
      for (let k = 0; k < entries && table + 16 * k + 16 <= RAM; k++) {
        v.setBigUint64(table + 16 * k, addr(r), true);
        v.setUint32(table + 16 * k + 8, len(r), true);
        v.setUint16(table + 16 * k + 12, r.u32() & 0x7, true);
        v.setUint16(table + 16 * k + 14, r.chance(0.7) ? k + 1 : r.edge(entries, 0xffff), true);
      }
      a = BigInt(table);
      l = r.chance(0.8) ? 16 * entries : len(r);
    }
    q.setDesc(i, Number(a & 0xffff_ffff_ffffn), l >>> 0, flags & 0xffff, next & 0xffff);
    if (a > 0xffff_ffff_ffffn) v.setBigUint64(q.desc + 16 * i, a, true);
  }
  // Request header: every type, sectors at and past the end of the disk.
  v.setUint32(HDR, r.pick([0, 1, 4, 8, 11, 13, r.u32()]), true);
  v.setUint32(HDR + 4, r.chance(0.9) ? 0 : r.u32(), true);
  v.setBigUint64(
    HDR + 8,
    r.pick([0n, 1n, 2047n, 2048n, 2049n, r.u64(), 0xffff_ffff_ffff_ffffn]),
    true,
  );
  // Avail ring: heads in and out of range; idx a little or far ahead, or behind.
  for (let i = 0; i < n; i++) v.setUint16(q.avail + 4 + 2 * i, r.edge(n, 0xffff), true);
  v.setUint16(q.avail, r.int(4), true); // flags
  v.setUint16(q.avail + 4 + 2 * n, r.u32() & 0xffff, true); // used_event
  q.setAvailIdx(r.pick([1, 2, n - 1, n, n + 1, 0xffff, r.u32() & 0xffff]) & 0xffff);
}

/** A valid one-sector read must complete after a reset: the device is still usable. */
async function blkSanity(rig: BlkRig): Promise<boolean> {
  rig.drv.setStatus(0);
  await settle(rig.dev, "virtio-blk reset");
  const q = bringUp(rig, 8);
  const v = new DataView(rig.mem.ram.buffer);
  v.setUint32(HDR, 0, true);
  v.setUint32(HDR + 4, 0, true);
  v.setBigUint64(HDR + 8, 0n, true);
  rig.mem.ram[STATUS] = 0xee;
  const head = q.send([
    { addr: HDR, len: 16 },
    { addr: BUF, len: 512, write: true },
    { addr: STATUS, len: 1, write: true },
  ]);
  await settle(rig.dev, "virtio-blk sanity read");
  const used = q.takeUsed();
  return used.length === 1 && used[0].id === head && rig.mem.ram[STATUS] === 0;
}

function bringUp(rig: BlkRig, size: number): DriverQueue {
  rig.mem.ram.fill(0, RING, RING + 0x2000);
  if (!rig.drv.negotiate(rig.dev.offered)) throw new Error("FEATURES_OK refused");
  const q = rig.drv.setupQueue(0, RING, size);
  rig.drv.driverOk();
  return q;
}

async function blkRun(r: Rng, states: number, stats: RingStats, beat: (s: string) => void) {
  let rig = blkRig({ mem: memOptions(r) });
  for (let i = 0; i < states; i++) {
    if (i % 500 === 499) rig = blkRig({ mem: memOptions(r) }); // other memory flavours
    beat(`virtio-blk state ${i}`);
    rig.drv.setStatus(0);
    await settle(rig.dev, "virtio-blk reset");
    const q = bringUp(rig, r.pick([1, 2, 4, 8, 16, 64, 256]));
    blkState(r, rig, q);
    if (r.chance(0.2)) rig.mem.addHole(r.int(RAM), r.int(4096));
    q.kick();
    if (r.chance(0.3)) q.kick();
    await settle(rig.dev, `virtio-blk state ${i}`);
    if (rig.dev.status & Status.DEVICE_NEEDS_RESET) stats.refused++;
    stats.blk++;
    stats.states++;
    if (i % 10 === 0 || rig.dev.status & Status.DEVICE_NEEDS_RESET) {
      // Holes stay: the sanity request uses addresses below 0x30000 that holes may cover.
      const clean = blkRig({ mem: { size: RAM } });
      const ok = await blkSanity(rig.mem.ram.length ? rig : clean);
      if (!ok && !(await blkSanity(clean))) stats.broken++;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// e1000

function e1000State(r: Rng, dev: E1000, ram: Uint8Array): void {
  const v = new DataView(ram.buffer);
  const count = r.pick([8, 16, 32, 256]);
  // Descriptors: legacy, context and data, with random lengths, commands and TSO parameters.
  for (let i = 0; i < count; i++) {
    const at = ADDR.TX_RING + 16 * i;
    v.setBigUint64(at, r.chance(0.7) ? BigInt(ADDR.TX_BUF + r.int(0x8000)) : addr(r), true);
    v.setUint32(at + 8, r.chance(0.5) ? (r.int(2048) | (r.u32() & 0xff00_0000)) : r.u32(), true);
    v.setUint32(at + 12, r.u32(), true);
    const rx = ADDR.RX_RING + 16 * i;
    if (rx + 16 <= ADDR.TX_BUF) {
      v.setBigUint64(rx, r.chance(0.8) ? BigInt(ADDR.RX_BUF + 2048 * (i % 64)) : addr(r), true);
      v.setBigUint64(rx + 8, r.chance(0.9) ? 0n : r.u64(), true);
    }
  }
  for (let i = 0; i < 256; i++) ram[ADDR.TX_BUF + r.int(0x8000)] = r.u32() & 0xff;
  const ringBytes = count * 16;
  wr(dev, R.TDLEN, r.chance(0.8) ? ringBytes : r.edge(ringBytes, 0xfffff) & ~0x7f);
  wr(dev, R.TDH, r.edge(count, 0xffff));
  wr(dev, R.TDT, r.chance(0.7) ? r.int(count) : r.edge(count, 0xffff));
  wr(dev, R.RDLEN, r.chance(0.8) ? Math.min(ringBytes, 0x1000) : r.u32() & 0xfff80);
  wr(dev, R.RDH, r.edge(count, 0xffff));
  wr(dev, R.RDT, r.chance(0.7) ? r.int(count) : r.edge(count, 0xffff));
  if (r.chance(0.2)) wr(dev, R.RCTL, r.u32());
  if (r.chance(0.2)) wr(dev, R.TCTL, r.u32() | TCTL.EN);
}

function frame(r: Rng): Uint8Array {
  const f = r.bytes(r.pick([0, 1, 13, 14, 60, 64, 1514, 1518, 9000, 16384, r.int(20000)]));
  if (f.length >= 6 && r.chance(0.6)) f.set(RIG_MAC);
  return f;
}

async function e1000Run(r: Rng, states: number, stats: RingStats, beat: (s: string) => void) {
  let rg = e1000Rig({ ...memOptions(r), size: RAM });
  for (let i = 0; i < states; i++) {
    if (i % 500 === 499) {
      rg.dev.close();
      rg = e1000Rig({ ...memOptions(r), size: RAM });
    }
    beat(`e1000 state ${i}`);
    wr(rg.dev, R.CTRL, (1 << 26) | (1 << 6)); // RST, SLU
    wr(rg.dev, R.CTRL, 1 << 6);
    setupTx(rg);
    setupRx(rg, 8, RCTL.BAM | (r.chance(0.5) ? RCTL.UPE | RCTL.LPE : 0));
    e1000State(r, rg.dev, rg.mem.ram);
    for (let k = r.int(4); k > 0; k--) rg.wire.send(frame(r));
    await settle(rg.dev, `e1000 state ${i}`);
    if (rg.dev.tx.stopped || rg.dev.rx.stopped) stats.refused++;
    stats.e1000++;
    stats.states++;
    if (i % 10 === 0) {
      // Sanity: after a reset, one valid frame goes out.
      await within(rg.dev.reset(), "e1000 reset");
      wr(rg.dev, R.CTRL, 1 << 6);
      setupTx(rg, 8);
      const before = rg.wire.received.length;
      const f = new Uint8Array(60).fill(0xab);
      rg.mem.ram.set(f, ADDR.TX_BUF);
      const d = new DataView(rg.mem.ram.buffer, ADDR.TX_RING, 16);
      d.setBigUint64(0, BigInt(ADDR.TX_BUF), true);
      d.setUint32(8, 60 | (0x0b << 24), true); // EOP | IFCS | RS
      d.setUint32(12, 0, true);
      wr(rg.dev, R.TDT, 1);
      await settle(rg.dev, "e1000 sanity frame");
      if (rg.wire.received.length !== before + 1 || rd(rg.dev, R.TDH) !== 1) stats.broken++;
    }
  }
  rg.dev.close();
}

/** Fuzzes `states` ring states (half virtio-blk, half e1000) from `seed`. */
export async function fuzzRings(
  seed: number,
  states: number,
  beat: (what: string) => void = () => {},
): Promise<RingStats> {
  const r = new Rng(seed);
  const stats: RingStats = { states: 0, blk: 0, e1000: 0, refused: 0, broken: 0 };
  const half = Math.ceil(states / 2);
  await blkRun(r.fork(), half, stats, beat);
  await e1000Run(r.fork(), states - half, stats, beat);
  assert.equal(stats.states, states);
  return stats;
}
