/**
 * Test rig for the e1000 model: fake guest memory and context (the virtio tests' doubles), an
 * in-memory cable, and a tiny "driver" that programs rings and descriptors like Linux's e1000.
 *
 * @module
 */
import { bounded } from "../../tests/watchdog.ts";
import {
  FakeContext,
  FakeGuestMemory,
  type FakeMemoryOptions,
} from "../virtio/testing/fake_memory.ts";
import { type MemoryBackend, memoryPair } from "../net/memory.ts";
import { CTRL, DESC_SIZE, R, RCTL, TCTL, TUCMD, TXD_CMD } from "../../spec/e1000.ts";
import type { Packet } from "./testing_packets.ts";
import { E1000 } from "./device.ts";
import { quiesce } from "../device.ts";

/** Guest addresses used by the rig. */
export const ADDR = {
  TX_RING: 0x1000,
  RX_RING: 0x3000,
  TX_BUF: 0x10000,
  RX_BUF: 0x40000,
} as const;

/** Station address of rig devices. */
export const RIG_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
/** The broadcast address. */
export const BCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/** Everything a test touches. */
export interface Rig {
  dev: E1000;
  mem: FakeGuestMemory;
  ctx: FakeContext;
  /** The NIC's end of the cable. */
  backend: MemoryBackend;
  /** The far end: frames the NIC sends arrive in `wire.received`; `wire.send` reaches the NIC. */
  wire: MemoryBackend & { received: Uint8Array[] };
}

/** The parts of a rig the driver helpers use. */
export type Nic = Pick<Rig, "dev" | "mem">;

/**
 * Builds an attached device with station address `mac` on 1 MiB of fake memory (options
 * override), or on the given memory (another NIC's: a migration destination).
 */
export function rig(
  mem: Partial<FakeMemoryOptions> | FakeGuestMemory = {},
  mac: Uint8Array = RIG_MAC,
): Rig {
  const [backend, far] = memoryPair();
  const received: Uint8Array[] = [];
  far.attach({ receive: (f) => received.push(f), linkChanged: () => {} });
  const wire = Object.assign(far, { received });
  const m = mem instanceof FakeGuestMemory ? mem : new FakeGuestMemory({ size: 1 << 20, ...mem });
  const ctx = new FakeContext(m);
  const dev = new E1000({ backend, mac });
  dev.attach(ctx);
  return { dev, mem: m, ctx, backend, wire };
}

/** What {@link ready} sets up besides the link. */
export interface ReadyOptions {
  /** Receive ring: descriptors, RCTL bits, buffer size (defaults of {@link setupRx}). */
  rx?: { count?: number; rctl?: number; bufSize?: number };
  /** Transmit ring of `count` descriptors (default 16). */
  tx?: { count?: number };
  /** Fake memory options. */
  mem?: Partial<FakeMemoryOptions>;
  /** Station address (default {@link RIG_MAC}). */
  mac?: Uint8Array;
}

/** A rig with link up, the rings asked for, and the interrupt causes of that cleared. */
export function ready(opts: ReadyOptions = {}): Rig {
  const r = rig(opts.mem, opts.mac);
  linkUp(r.dev);
  if (opts.rx) setupRx(r, opts.rx.count, opts.rx.rctl, opts.rx.bufSize);
  if (opts.tx) setupTx(r, opts.tx.count);
  rd(r.dev, R.ICR);
  return r;
}

/** A rig ready to transmit, `f` (a broadcast {@link frame}) already at `ADDR.TX_BUF`. */
export function readyToSend(payload = 60): Rig & { f: Uint8Array } {
  const r = ready({ tx: {} });
  const f = frame(BCAST, payload);
  r.mem.ram.set(f, ADDR.TX_BUF);
  return { ...r, f };
}

/** 32-bit register write through BAR0. */
export function wr(dev: E1000, offset: number, value: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  dev.barWrite(0, offset, b);
}

/** 32-bit register read through BAR0. */
export function rd(dev: E1000, offset: number): number {
  const b = new Uint8Array(4);
  dev.barRead(0, offset, b);
  return new DataView(b.buffer).getUint32(0, true);
}

/** Waits until both rings are idle (a few turns, since kicks chain). */
export async function settle(dev: E1000): Promise<void> {
  // Bounded even if the device spins without yielding (tests/watchdog.ts).
  await bounded("settling the device", async () => {
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 0));
      await quiesce(dev);
    }
  });
}

/** Sets SLU like e1000_setup_link (link comes up, LSC). */
export function linkUp(dev: E1000): void {
  wr(dev, R.CTRL, rd(dev, R.CTRL) | CTRL.SLU);
}

/** Programs the transmit ring (count descriptors) and enables TX with PSP. */
export function setupTx(r: Nic, count = 16): void {
  wr(r.dev, R.TDBAL, ADDR.TX_RING);
  wr(r.dev, R.TDBAH, 0);
  wr(r.dev, R.TDLEN, count * DESC_SIZE);
  wr(r.dev, R.TDH, 0);
  wr(r.dev, R.TDT, 0);
  wr(r.dev, R.TCTL, TCTL.EN | TCTL.PSP);
}

/** Programs the receive ring with `count` buffers of `bufSize` and enables RX. */
export function setupRx(r: Nic, count = 16, rctl = RCTL.BAM, bufSize = 2048): void {
  for (let i = 0; i < count; i++) {
    const d = new DataView(r.mem.ram.buffer, ADDR.RX_RING + i * DESC_SIZE, DESC_SIZE);
    d.setBigUint64(0, BigInt(ADDR.RX_BUF + i * bufSize), true);
    d.setBigUint64(8, 0n, true);
  }
  wr(r.dev, R.RDBAL, ADDR.RX_RING);
  wr(r.dev, R.RDBAH, 0);
  wr(r.dev, R.RDLEN, count * DESC_SIZE);
  wr(r.dev, R.RDH, 0);
  wr(r.dev, R.RDT, count - 1);
  wr(r.dev, R.RCTL, rctl | RCTL.EN);
}

/** Fields of a transmit descriptor to write. */
export interface TxDesc {
  addr?: number | bigint;
  /** Raw dword 2 (length, CSO/DTYP, CMD). */
  lower: number;
  /** Raw dword 3 (STA, CSS/POPTS, special). */
  upper?: number;
}

/** Writes descriptor `i` of the transmit ring. */
export function putTx(r: Nic, i: number, d: TxDesc): void {
  const v = new DataView(r.mem.ram.buffer, ADDR.TX_RING + i * DESC_SIZE, DESC_SIZE);
  v.setBigUint64(0, BigInt(d.addr ?? 0), true);
  v.setUint32(8, d.lower >>> 0, true);
  v.setUint32(12, (d.upper ?? 0) >>> 0, true);
}

/** A legacy descriptor's dword 2 for `len` bytes with CMD bits `cmd`. */
export function legacy(len: number, cmd: number): number {
  return len | (cmd << 24);
}

/** An extended data descriptor's dword 2. */
export function dataDesc(len: number, dcmd: number): number {
  return len | (1 << 20) | ((dcmd | TXD_CMD.DEXT) << 24);
}

/** Fields of a context descriptor (SDM figure 3-10). */
export interface ContextFields {
  ipcss?: number;
  ipcso?: number;
  ipcse?: number;
  tucss?: number;
  tucso?: number;
  tucse?: number;
  paylen?: number;
  /** TUCMD bits (DEXT is added). */
  tucmd?: number;
  hdrlen?: number;
  mss?: number;
}

/** A context descriptor. */
export function contextDesc(c: ContextFields): TxDesc {
  const lo = BigInt(
    ((c.ipcss ?? 0) | ((c.ipcso ?? 0) << 8) | ((c.ipcse ?? 0) << 16)) >>> 0,
  );
  const hi = BigInt(
    ((c.tucss ?? 0) | ((c.tucso ?? 0) << 8) | ((c.tucse ?? 0) << 16)) >>> 0,
  );
  return {
    addr: lo | (hi << 32n),
    lower: (c.paylen ?? 0) | (((c.tucmd ?? 0) | TXD_CMD.DEXT) << 24),
    upper: ((c.hdrlen ?? 0) << 8) | ((c.mss ?? 0) << 16),
  };
}

/** The TSE context of TCP/IPv4 packet `p` (20-byte TCP header): `paylen` bytes in `mss` segments. */
export function tsoContext(p: Packet, paylen: number, mss: number): TxDesc {
  return contextDesc({
    ipcss: p.l3,
    ipcso: p.ipCsumAt,
    ipcse: p.l4 - 1,
    tucss: p.l4,
    tucso: p.csumAt,
    tucmd: TUCMD.TCP | TUCMD.IP | TUCMD.TSE,
    paylen,
    hdrlen: p.l4 + 20,
    mss,
  });
}

/** Puts `f` in the TX buffer and `count` one-descriptor (EOP|RS) copies of it in the ring. */
export function queueFrames(r: Nic, f: Uint8Array, count = 1): void {
  r.mem.ram.set(f, ADDR.TX_BUF);
  const lower = legacy(f.length, TXD_CMD.EOP | TXD_CMD.RS);
  for (let i = 0; i < count; i++) putTx(r, i, { addr: ADDR.TX_BUF, lower });
  wr(r.dev, R.TDT, count);
}

/** Reads descriptor `i` of a ring as a DataView. */
export function descView(r: Nic, ring: number, i: number): DataView {
  return new DataView(r.mem.ram.buffer, ring + i * DESC_SIZE, DESC_SIZE);
}

/** A test frame: destination, source, ethertype, then `payload` bytes counting up. */
export function frame(dst: Uint8Array, payload: number, type = 0x88b5): Uint8Array {
  const f = new Uint8Array(14 + payload);
  f.set(dst, 0);
  f.set(Uint8Array.of(2, 0, 0, 0, 0, 1), 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  for (let i = 0; i < payload; i++) f[14 + i] = i & 0xff;
  return f;
}
