/**
 * A minimal virtio PCI driver for tests: talks to a device only through barRead/barWrite, keeps
 * its split virtqueues in a {@link FakeGuestMemory}, the way a guest driver would.
 *
 * @module
 */
import type { Device } from "../../device.ts";
import { CommonCfg as CC, DescFlag, Status } from "../../../spec/virtio.ts";
import { NOTIFY_OFF_MULTIPLIER, Region, VIRTIO_BAR } from "../layout.ts";
import type { FakeGuestMemory } from "./fake_memory.ts";

/** Common configuration offsets (spec/virtio.ts), under the short name the device tests use. */
export { CC };

/** A buffer of a chain built by the test driver. */
export interface Buf {
  addr: number;
  len: number;
  /** Device-writable. */
  write?: boolean;
}

/** Register-level access to a virtio PCI device. */
export class TestDriver {
  /** The device (another one after a test moved the driver, as a migration does). */
  dev: Device;
  readonly mem: FakeGuestMemory;

  constructor(dev: Device, mem: FakeGuestMemory) {
    this.dev = dev;
    this.mem = mem;
  }

  /** Reads a little-endian value of `width` bytes at `offset` of the virtio BAR. */
  read(offset: number, width: number): number {
    const b = new Uint8Array(width);
    this.dev.barRead(VIRTIO_BAR, offset, b);
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + b[i];
    return v;
  }

  /** Writes a little-endian value of `width` bytes at `offset` of the virtio BAR. */
  write(offset: number, width: number, value: number): void {
    const b = new Uint8Array(width);
    for (let i = 0; i < width; i++) b[i] = Math.floor(value / 256 ** i) & 0xff;
    this.dev.barWrite(VIRTIO_BAR, offset, b);
  }

  /** All 64 device feature bits. */
  deviceFeatures(): bigint {
    this.write(CC.DEVICE_FEATURE_SELECT, 4, 0);
    const lo = this.read(CC.DEVICE_FEATURE, 4);
    this.write(CC.DEVICE_FEATURE_SELECT, 4, 1);
    const hi = this.read(CC.DEVICE_FEATURE, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** device_status. */
  status(): number {
    return this.read(CC.DEVICE_STATUS, 1);
  }

  /** Writes device_status. */
  setStatus(v: number): void {
    this.write(CC.DEVICE_STATUS, 1, v);
  }

  /** Steps 1-6 of §3.1.1; returns whether FEATURES_OK stuck. */
  negotiate(features: bigint): boolean {
    this.setStatus(0);
    this.setStatus(Status.ACKNOWLEDGE);
    this.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    this.write(CC.DRIVER_FEATURE_SELECT, 4, 0);
    this.write(CC.DRIVER_FEATURE, 4, Number(features & 0xffffffffn));
    this.write(CC.DRIVER_FEATURE_SELECT, 4, 1);
    this.write(CC.DRIVER_FEATURE, 4, Number(features >> 32n));
    this.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    return (this.status() & Status.FEATURES_OK) !== 0;
  }

  /** Sets DRIVER_OK (§3.1.1 step 8). */
  driverOk(): void {
    this.setStatus(this.status() | Status.DRIVER_OK);
  }

  /** Configures and enables queue `index` with rings at `base` (§4.1.5.1.3). */
  setupQueue(index: number, base: number, size?: number, vector?: number): DriverQueue {
    this.write(CC.QUEUE_SELECT, 2, index);
    if (size !== undefined) this.write(CC.QUEUE_SIZE, 2, size);
    const q = new DriverQueue(this, index, base, this.read(CC.QUEUE_SIZE, 2));
    if (vector !== undefined) this.write(CC.QUEUE_MSIX_VECTOR, 2, vector);
    this.write(CC.QUEUE_DESC, 4, q.desc);
    this.write(CC.QUEUE_DESC + 4, 4, 0);
    this.write(CC.QUEUE_DRIVER, 4, q.avail);
    this.write(CC.QUEUE_DRIVER + 4, 4, 0);
    this.write(CC.QUEUE_DEVICE, 4, q.used);
    this.write(CC.QUEUE_DEVICE + 4, 4, 0);
    this.write(CC.QUEUE_ENABLE, 2, 1);
    return q;
  }

  /** Reads (and so clears) the ISR status byte. */
  isr(): number {
    return this.read(Region.ISR, 1);
  }

  /** Reads the device configuration structure. */
  config(offset: number, width: number): number {
    return this.read(Region.DEVICE + offset, width);
  }
}

/** The driver side of one split virtqueue in fake guest RAM. */
export class DriverQueue {
  readonly index: number;
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  readonly #drv: TestDriver;
  readonly #view: DataView;
  #nextDesc = 0;
  #availIdx = 0;
  #lastUsed = 0;

  constructor(drv: TestDriver, index: number, base: number, size: number) {
    this.#drv = drv;
    this.index = index;
    this.size = size;
    this.desc = base;
    this.avail = base + 16 * size;
    this.used = Math.ceil((this.avail + 6 + 2 * size) / 4) * 4;
    this.#view = new DataView(drv.mem.ram.buffer);
  }

  /** Writes descriptor `i` of the table at `table` (default: the ring's). */
  setDesc(i: number, addr: number, len: number, flags: number, next = 0, table = this.desc): void {
    const at = table + 16 * i;
    this.#view.setBigUint64(at, BigInt(addr), true);
    this.#view.setUint32(at + 8, len, true);
    this.#view.setUint16(at + 12, flags, true);
    this.#view.setUint16(at + 14, next, true);
  }

  /** Writes `bufs` as a chain at `table` starting at entry `first`; returns `first`. */
  #writeChain(bufs: Buf[], table: number, first: number, wrap: number): number {
    bufs.forEach((b, k) => {
      const i = (first + k) % wrap;
      const last = k === bufs.length - 1;
      const flags = (b.write ? DescFlag.WRITE : 0) | (last ? 0 : DescFlag.NEXT);
      this.setDesc(i, b.addr, b.len, flags, (i + 1) % wrap, table);
    });
    return first;
  }

  /** Builds a chain of `bufs`; with `indirectAt` as an indirect table at that guest address. */
  addChain(bufs: Buf[], indirectAt?: number): number {
    const head = this.#nextDesc;
    if (indirectAt === undefined) {
      this.#writeChain(bufs, this.desc, head, this.size);
      this.#nextDesc = (head + bufs.length) % this.size;
    } else {
      this.#writeChain(bufs, indirectAt, 0, bufs.length);
      this.setDesc(head, indirectAt, 16 * bufs.length, DescFlag.INDIRECT);
      this.#nextDesc = (head + 1) % this.size;
    }
    return head;
  }

  /** Puts `head` in the avail ring and publishes the new avail idx (§2.7.13). */
  submit(head: number): void {
    this.#view.setUint16(this.avail + 4 + 2 * (this.#availIdx % this.size), head, true);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    this.setAvailIdx(this.#availIdx);
  }

  /** Writes avail idx directly (to simulate broken drivers). */
  setAvailIdx(idx: number): void {
    this.#view.setUint16(this.avail + 2, idx, true);
  }

  /** Notifies the device (§4.1.5.2). */
  kick(): void {
    this.#drv.write(Region.NOTIFY + this.index * NOTIFY_OFF_MULTIPLIER, 2, this.index);
  }

  /** Adds a chain, submits and kicks it; returns the head. */
  send(bufs: Buf[], indirectAt?: number): number {
    const head = this.addChain(bufs, indirectAt);
    this.submit(head);
    this.kick();
    return head;
  }

  /** Used ring idx. */
  usedIdx(): number {
    return this.#view.getUint16(this.used + 2, true);
  }

  /** Used elements published since the last call; re-arms used_event like Linux does. */
  takeUsed(): { id: number; len: number }[] {
    const out = [];
    const idx = this.usedIdx();
    while (this.#lastUsed !== idx) {
      const at = this.used + 4 + 8 * (this.#lastUsed % this.size);
      out.push({ id: this.#view.getUint32(at, true), len: this.#view.getUint32(at + 4, true) });
      this.#lastUsed = (this.#lastUsed + 1) & 0xffff;
    }
    this.setUsedEvent(this.#lastUsed);
    return out;
  }

  /** Avail ring flags (bit 0: NO_INTERRUPT). */
  setAvailFlags(flags: number): void {
    this.#view.setUint16(this.avail, flags, true);
  }

  /** used_event (EVENT_IDX). */
  setUsedEvent(idx: number): void {
    this.#view.setUint16(this.avail + 4 + 2 * this.size, idx, true);
  }

  /** avail_event written by the device (EVENT_IDX). */
  availEvent(): number {
    return this.#view.getUint16(this.used + 4 + 8 * this.size, true);
  }
}
