/**
 * A tiny virtio-pci (modern, virtio 1.x §4.1) block driver for tests, speaking to the device
 * only through the vfio-user client: it walks the config-space capability list (REGION_READ on
 * region 7), finds the virtio structures, enables bus mastering, negotiates features, sets up
 * one split virtqueue (§2.7) in guest RAM, submits virtio-blk requests (§5.2.6) with a kick that
 * is a posted REGION_WRITE (NO_REPLY, like QEMU) and waits for completions through the MSI-X
 * eventfd, the INTx eventfd (with ISR read and SET_IRQS UNMASK, as a VMM's resample does) or by
 * polling the used ring, always with a bounded timeout.
 *
 * @module
 */
import type { VfioUserClient } from "./client.ts";
import { DeviceInterrupts, type InterruptMode } from "./interrupts.ts";
import type { GuestArena } from "./guest_arena.ts";
import { PciCommand } from "../spec/pci.ts";
import {
  CommonCfg,
  DescFlag,
  feature,
  FeatureBit,
  NO_VECTOR,
  Status as VirtioStatus,
} from "../spec/virtio.ts";
import { BlkFeature, BlkStatus, ID_BYTES, ReqType, SECTOR_SIZE } from "../spec/virtio_blk.ts";
import { PciConfig } from "./pci.ts";
import { le, pollUntil, sleep } from "./util.ts";
import { ClientClosedError, WaitTimeoutError } from "./errors.ts";
import { probeVirtioPci, type VirtioPciLayout } from "./virtio_pci.ts";

export type { InterruptMode };

/** Options of {@link VirtioBlkDriver.create}. */
export interface VirtioBlkDriverOptions {
  /** Guest memory for rings, request headers and status bytes (must be DMA-mapped). */
  arena: GuestArena;
  /** Guest memory for data buffers; default `arena`. */
  dataArena?: GuestArena;
  /** Queue size (power of two, <= the device's maximum). Default 64. */
  queueSize?: number;
  /** Completion notification. Default "msix". */
  interrupts?: InterruptMode;
  /**
   * Device feature bits (numbers, spec/virtio.ts FeatureBit and spec/virtio_blk.ts BlkFeature) to
   * accept if offered; VERSION_1 is always accepted.
   */
  features?: number[];
  /** Largest data descriptor; longer buffers are split over several. Default 64 KiB. */
  maxSegment?: number;
  /** Bound of every wait. Default the client's. */
  timeoutMs?: number;
  /** Send common-config writes posted (NO_REPLY) like QEMU. Default false. */
  postedWrites?: boolean;
}

/** One virtio-blk request. */
export interface BlkRequest {
  type: number;
  sector?: bigint;
  /** OUT: the bytes to write. */
  data?: Uint8Array;
  /** IN / GET_ID: bytes to read. */
  readLength?: number;
  /** Use this guest address for the data instead of allocating (the caller prepares it). */
  dataAddr?: bigint;
  /** Largest data descriptor for this request (default: the driver's `maxSegment`). */
  maxSegment?: number;
}

/** A completed request. */
export interface BlkCompletion {
  /** Status byte written by the device (0xff if it wrote none). */
  status: number;
  /** Used length reported in the used ring. */
  usedLen: number;
  /** Data read (IN / GET_ID) when the buffer is visible to the client and status is OK. */
  data?: Uint8Array;
}

/** A virtio-blk request that completed with a status other than OK. */
export class BlkStatusError extends Error {
  readonly status: number;
  constructor(status: number, what: string) {
    super(`virtio-blk ${what}: status ${status}`);
    this.name = "BlkStatusError";
    this.status = status;
  }
}

interface InFlight {
  head: number;
  descs: number[];
  req: BlkRequest;
  headerAddr: bigint;
  statusAddr: bigint;
  dataAddr: bigint | undefined;
  ownsData: boolean;
  dataLen: number;
  done?: BlkCompletion;
}

/** The driver of one virtio-blk function with one request queue. */
export class VirtioBlkDriver implements Disposable {
  /** The connection to the device (another one after {@link moveTo}). */
  client: VfioUserClient;
  pci: PciConfig;
  readonly layout: VirtioPciLayout;
  readonly arena: GuestArena;
  readonly dataArena: GuestArena;
  readonly mode: InterruptMode;
  readonly timeoutMs: number;
  readonly maxSegment: number;
  /** Its interrupts: MSI-X vectors [queue 0, config] or the INTx line. */
  irqs: DeviceInterrupts | undefined;
  /** Features in force. */
  negotiated = 0n;
  /** Device features offered. */
  offered = 0n;
  /** Capacity in 512-byte sectors. */
  capacity = 0n;
  #queueSize = 0;
  #desc = 0n;
  #avail = 0n;
  #used = 0n;
  #notifyOffset = 0;
  #free: number[] = [];
  #availIdx = 0;
  #lastUsed = 0;
  #inflight = new Map<number, InFlight>();
  #posted: boolean;

  private constructor(
    client: VfioUserClient,
    layout: VirtioPciLayout,
    opts: VirtioBlkDriverOptions,
  ) {
    this.client = client;
    this.pci = new PciConfig(client);
    this.layout = layout;
    this.arena = opts.arena;
    this.dataArena = opts.dataArena ?? opts.arena;
    this.mode = opts.interrupts ?? "msix";
    this.timeoutMs = opts.timeoutMs ?? client.timeoutMs;
    this.maxSegment = opts.maxSegment ?? 64 * 1024;
    this.#posted = opts.postedWrites ?? false;
  }

  /**
   * Probes the function, sets up interrupts, and brings the device to DRIVER_OK with queue 0
   * ready (§3.1.1). The DMA maps behind the arenas must be in place.
   */
  static async create(
    client: VfioUserClient,
    opts: VirtioBlkDriverOptions,
  ): Promise<VirtioBlkDriver> {
    const d = new VirtioBlkDriver(client, await probeVirtioPci(client), opts);
    await d.#init(opts);
    return d;
  }

  // --- register access -----------------------------------------------------------------------

  /** Reads `count` bytes of the common configuration. */
  commonRead(offset: number, count: number): Promise<Uint8Array> {
    const c = this.layout.common;
    return this.client.regionRead(c.bar, c.offset + offset, count);
  }

  /** Writes the common configuration. */
  commonWrite(offset: number, data: Uint8Array): Promise<void> {
    const c = this.layout.common;
    return this.client.regionWrite(c.bar, c.offset + offset, data, { noReply: this.#posted });
  }

  /** device_status. */
  async deviceStatus(): Promise<number> {
    return (await this.commonRead(CommonCfg.DEVICE_STATUS, 1))[0];
  }

  /** Writes device_status. */
  setDeviceStatus(v: number): Promise<void> {
    return this.commonWrite(CommonCfg.DEVICE_STATUS, Uint8Array.of(v));
  }

  /** Reads (and so clears) the ISR status byte; also deasserts INTx (§4.1.4.5). */
  async readIsr(): Promise<number> {
    const i = this.layout.isr;
    return (await this.client.regionRead(i.bar, i.offset, 1))[0];
  }

  /** Reads the device-specific configuration. */
  deviceConfig(offset: number, count: number): Promise<Uint8Array> {
    const d = this.layout.device;
    return this.client.regionRead(d.bar, d.offset + offset, count);
  }

  async #u32(offset: number): Promise<number> {
    return le.u32(await this.commonRead(offset, 4));
  }

  async #write16(offset: number, v: number): Promise<void> {
    await this.commonWrite(offset, le.b16(v));
  }

  async #write32(offset: number, v: number): Promise<void> {
    await this.commonWrite(offset, le.b32(v));
  }

  async #write64(offset: number, v: bigint): Promise<void> {
    await this.#write32(offset, Number(v & 0xffff_ffffn));
    await this.#write32(offset + 4, Number(v >> 32n));
  }

  // --- initialisation ------------------------------------------------------------------------

  async #init(opts: VirtioBlkDriverOptions): Promise<void> {
    await this.pci.updateCommand(
      PciCommand.MEMORY_SPACE | PciCommand.BUS_MASTER,
      PciCommand.INTX_DISABLE,
    );
    await this.#setupInterrupts();
    // §3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK.
    await this.resetDevice();
    await this.setDeviceStatus(VirtioStatus.ACKNOWLEDGE);
    await this.setDeviceStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
    await this.#write32(CommonCfg.DEVICE_FEATURE_SELECT, 0);
    const lo = await this.#u32(CommonCfg.DEVICE_FEATURE);
    await this.#write32(CommonCfg.DEVICE_FEATURE_SELECT, 1);
    const hi = await this.#u32(CommonCfg.DEVICE_FEATURE);
    this.offered = (BigInt(hi) << 32n) | BigInt(lo);
    const want = (opts.features ?? [
      BlkFeature.FLUSH,
      BlkFeature.BLK_SIZE,
      BlkFeature.SEG_MAX,
      BlkFeature.RO,
    ]).reduce((m, b) => m | feature(b), feature(FeatureBit.VERSION_1));
    const accept = want & this.offered;
    if (!(accept & feature(FeatureBit.VERSION_1))) {
      throw new Error("device does not offer VIRTIO_F_VERSION_1");
    }
    await this.#write32(CommonCfg.DRIVER_FEATURE_SELECT, 0);
    await this.#write32(CommonCfg.DRIVER_FEATURE, Number(accept & 0xffff_ffffn));
    await this.#write32(CommonCfg.DRIVER_FEATURE_SELECT, 1);
    await this.#write32(CommonCfg.DRIVER_FEATURE, Number(accept >> 32n));
    const s = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK;
    await this.setDeviceStatus(s);
    if (!((await this.deviceStatus()) & VirtioStatus.FEATURES_OK)) {
      throw new Error("device refused FEATURES_OK");
    }
    this.negotiated = accept;
    await this.#setupQueue(opts.queueSize ?? 64);
    const msix = this.mode === "msix";
    await this.#write16(CommonCfg.CONFIG_MSIX_VECTOR, msix ? 1 : NO_VECTOR);
    this.capacity = le.u64(await this.deviceConfig(0, 8));
    await this.setDeviceStatus(s | VirtioStatus.DRIVER_OK);
  }

  /** Writes 0 to device_status and waits until the device reads back 0 (§2.4, §4.1.4.3.1). */
  async resetDevice(): Promise<void> {
    await this.setDeviceStatus(0);
    await pollUntil(
      async () => ((await this.deviceStatus()) === 0 ? true : undefined),
      "device reset",
      this.timeoutMs,
    );
    this.#inflight.clear();
  }

  /**
   * The device moved to another server (live migration): kicks and register accesses go to
   * `client` from now on, and its interrupts are set up with this driver's eventfds, as a VMM
   * does on the destination. Rings, requests in flight and the negotiated state stay: the driver
   * is not re-initialised.
   */
  async moveTo(client: VfioUserClient): Promise<void> {
    this.client = client;
    this.pci = new PciConfig(client);
    await this.irqs?.moveTo(client);
  }

  /** Guest addresses of queue 0's descriptor table, avail ring and used ring. */
  get rings(): { desc: bigint; avail: bigint; used: bigint } {
    return { desc: this.#desc, avail: this.#avail, used: this.#used };
  }

  /** Where the request with head `head` lives in guest memory (while it is in flight). */
  placement(head: number): { header: bigint; status: bigint; data?: bigint; dataLen: number } {
    const f = this.#inflight.get(head);
    if (!f) throw new Error(`no request with head ${head}`);
    return { header: f.headerAddr, status: f.statusAddr, data: f.dataAddr, dataLen: f.dataLen };
  }

  /** Heads of the requests submitted and not yet reaped. */
  get pendingHeads(): number[] {
    return [...this.#inflight.keys()];
  }

  async #setupInterrupts(): Promise<void> {
    const vectors = Math.min(this.layout.msix?.vectors ?? 0, 2);
    if (this.mode === "msix" && !vectors) throw new Error("device has no MSI-X capability");
    this.irqs = await DeviceInterrupts.setup(this.client, this.mode, vectors);
  }

  async #setupQueue(size: number): Promise<void> {
    await this.#write16(CommonCfg.QUEUE_SELECT, 0);
    const max = le.u16(await this.commonRead(CommonCfg.QUEUE_SIZE, 2));
    if (max === 0) throw new Error("queue 0 is not available");
    size = Math.min(size, max);
    this.#queueSize = size;
    const a = this.arena;
    this.#desc = a.alloc(16 * size, 16);
    this.#avail = a.alloc(6 + 2 * size, 2);
    this.#used = a.alloc(6 + 8 * size, 4);
    a.view(this.#desc, 16 * size).fill(0);
    a.view(this.#avail, 6 + 2 * size).fill(0);
    a.view(this.#used, 6 + 8 * size).fill(0);
    this.#free = Array.from({ length: size }, (_, i) => size - 1 - i);
    this.#availIdx = 0;
    this.#lastUsed = 0;
    await this.#write16(CommonCfg.QUEUE_SIZE, size);
    await this.#write16(CommonCfg.QUEUE_MSIX_VECTOR, this.mode === "msix" ? 0 : NO_VECTOR);
    await this.#write64(CommonCfg.QUEUE_DESC, this.#desc);
    await this.#write64(CommonCfg.QUEUE_DRIVER, this.#avail);
    await this.#write64(CommonCfg.QUEUE_DEVICE, this.#used);
    this.#notifyOffset = le.u16(await this.commonRead(CommonCfg.QUEUE_NOTIFY_OFF, 2));
    await this.#write16(CommonCfg.QUEUE_ENABLE, 1);
  }

  /** Queue size in use. */
  get queueSize(): number {
    return this.#queueSize;
  }

  /** Used index as last seen by the driver. */
  get lastUsed(): number {
    return this.#lastUsed;
  }

  /** Requests submitted and not yet reaped. */
  get inFlight(): number {
    return this.#inflight.size;
  }

  // --- requests ------------------------------------------------------------------------------

  #u16view(addr: bigint): Uint16Array {
    const v = this.arena.view(addr, 2);
    return new Uint16Array(v.buffer, v.byteOffset, 1);
  }

  /**
   * Places a request in the ring without kicking; returns its head descriptor index. Use
   * {@link kick} (or {@link submit}) afterwards.
   */
  enqueue(req: BlkRequest): number {
    const a = this.arena;
    const dataLen = req.type === ReqType.OUT ? req.data?.length ?? 0 : req.readLength ?? 0;
    const headerAddr = a.alloc(16, 16);
    const statusAddr = a.alloc(1, 1);
    let dataAddr = req.dataAddr;
    const ownsData = dataAddr === undefined && dataLen > 0;
    if (ownsData) dataAddr = this.dataArena.alloc(dataLen, 512);
    const hdr = new DataView(a.bytes.buffer, a.bytes.byteOffset + Number(headerAddr - a.iova), 16);
    hdr.setUint32(0, req.type, true);
    hdr.setUint32(4, 0, true);
    hdr.setBigUint64(8, req.sector ?? 0n, true);
    a.view(statusAddr, 1)[0] = 0xff;
    if (req.type === ReqType.OUT && req.data && ownsData) {
      this.dataArena.view(dataAddr!, dataLen).set(req.data);
    }
    // Descriptors: header (device-readable), data segments, status (device-writable).
    const parts: { addr: bigint; len: number; write: boolean }[] = [{
      addr: headerAddr,
      len: 16,
      write: false,
    }];
    const dataWrite = req.type !== ReqType.OUT;
    const seg = req.maxSegment ?? this.maxSegment;
    for (let off = 0; off < dataLen; off += seg) {
      parts.push({
        addr: dataAddr! + BigInt(off),
        len: Math.min(seg, dataLen - off),
        write: dataWrite,
      });
    }
    parts.push({ addr: statusAddr, len: 1, write: true });
    if (parts.length > this.#free.length) {
      throw new RangeError(`request needs ${parts.length} descriptors, ${this.#free.length} free`);
    }
    const descs = parts.map(() => this.#free.pop()!);
    parts.forEach((p, i) => {
      const d = new DataView(
        a.bytes.buffer,
        a.bytes.byteOffset + Number(this.#desc - a.iova) + 16 * descs[i],
        16,
      );
      d.setBigUint64(0, p.addr, true);
      d.setUint32(8, p.len, true);
      d.setUint16(
        12,
        (p.write ? DescFlag.WRITE : 0) | (i < parts.length - 1 ? DescFlag.NEXT : 0),
        true,
      );
      d.setUint16(14, i < parts.length - 1 ? descs[i + 1] : 0, true);
    });
    const head = descs[0];
    this.#inflight.set(head, {
      head,
      descs,
      req,
      headerAddr,
      statusAddr,
      dataAddr,
      ownsData,
      dataLen,
    });
    // avail ring entry, then (ordered after it) the new avail idx.
    const slot = this.#availIdx % this.#queueSize;
    const ring = new DataView(
      a.bytes.buffer,
      a.bytes.byteOffset + Number(this.#avail - a.iova),
      6 + 2 * this.#queueSize,
    );
    ring.setUint16(4 + 2 * slot, head, true);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    Atomics.store(this.#u16view(this.#avail + 2n), 0, this.#availIdx);
    return head;
  }

  /** Notifies queue 0: a posted REGION_WRITE of the queue index to its notify address. */
  kick(): Promise<void> {
    const n = this.layout.notify;
    const off = n.offset + this.#notifyOffset * n.multiplier;
    return this.client.regionWrite(n.bar, off, le.b16(0), { noReply: true });
  }

  /** Enqueues, kicks and waits for the completion. */
  async submit(req: BlkRequest): Promise<BlkCompletion> {
    const head = this.enqueue(req);
    await this.kick();
    return this.wait(head);
  }

  /** Collects used-ring entries published by the device. */
  reap(): number {
    const usedIdx = Atomics.load(this.#u16view(this.#used + 2n), 0);
    let n = 0;
    const a = this.arena;
    const ring = new DataView(
      a.bytes.buffer,
      a.bytes.byteOffset + Number(this.#used - a.iova),
      6 + 8 * this.#queueSize,
    );
    while (this.#lastUsed !== usedIdx) {
      const slot = this.#lastUsed % this.#queueSize;
      const id = ring.getUint32(4 + 8 * slot, true);
      const len = ring.getUint32(8 + 8 * slot, true);
      this.#lastUsed = (this.#lastUsed + 1) & 0xffff;
      const f = this.#inflight.get(id);
      if (!f || f.done) throw new Error(`device returned unknown or duplicate head ${id}`);
      this.#complete(f, len);
      n++;
    }
    return n;
  }

  #complete(f: InFlight, usedLen: number): void {
    const status = this.arena.view(f.statusAddr, 1)[0];
    const done: BlkCompletion = { status, usedLen };
    if (f.req.type !== ReqType.OUT && f.dataLen > 0 && status === BlkStatus.OK) {
      const space = [this.dataArena, this.arena].find((x) => x.contains(f.dataAddr!, f.dataLen));
      if (space) done.data = space.view(f.dataAddr!, f.dataLen).slice();
    }
    f.done = done;
    for (const d of f.descs) this.#free.push(d);
    this.arena.free(f.headerAddr);
    this.arena.free(f.statusAddr);
    if (f.ownsData) this.dataArena.free(f.dataAddr!);
  }

  /** Waits (bounded) until the request with head `head` completed; returns its completion. */
  async wait(head: number, timeoutMs = this.timeoutMs): Promise<BlkCompletion> {
    const f = this.#inflight.get(head);
    if (!f) throw new Error(`no request with head ${head}`);
    const deadline = Date.now() + timeoutMs;
    let delay = 1;
    for (;;) {
      this.reap();
      if (f.done) {
        this.#inflight.delete(head);
        return f.done;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new WaitTimeoutError(this.#describe(head), timeoutMs);
      if (this.client.isClosed) throw new ClientClosedError(`virtio-blk request (head ${head})`);
      if (this.mode !== "poll") {
        const fired = await this.irqs!.wait(0, left);
        if (fired > 0n && this.mode === "intx") await this.ackIntx();
      } else {
        await sleep(delay);
        delay = Math.min(delay * 2, 20);
      }
    }
  }

  /** Ring state for error messages. */
  #describe(head: number): string {
    const avail = Atomics.load(this.#u16view(this.#avail + 2n), 0);
    const used = Atomics.load(this.#u16view(this.#used + 2n), 0);
    return `virtio-blk request (head ${head}; avail idx ${avail}, used idx ${used}, ` +
      `${this.#inflight.size} in flight)`;
  }

  /** INTx end of interrupt, as a VMM's resample does: ISR read (lowers the line), then unmask. */
  async ackIntx(): Promise<void> {
    await this.readIsr();
    await this.irqs!.unmaskIntx();
  }

  /** Submits and throws {@link BlkStatusError} unless the status is OK. */
  async #ok(req: BlkRequest, what: string): Promise<BlkCompletion> {
    const c = await this.submit(req);
    if (c.status !== BlkStatus.OK) throw new BlkStatusError(c.status, what);
    return c;
  }

  /** Reads `sectors` sectors at `sector`. */
  async read(sector: bigint, sectors: number): Promise<Uint8Array> {
    const c = await this.#ok(
      { type: ReqType.IN, sector, readLength: sectors * SECTOR_SIZE },
      `read @${sector}`,
    );
    return c.data!;
  }

  /** Writes `data` (a multiple of 512 bytes) at `sector`. */
  async write(sector: bigint, data: Uint8Array): Promise<void> {
    await this.#ok({ type: ReqType.OUT, sector, data }, `write @${sector}`);
  }

  /** FLUSH. */
  async flush(): Promise<void> {
    await this.#ok({ type: ReqType.FLUSH }, "flush");
  }

  /** GET_ID: the serial, NULs stripped. */
  async getId(): Promise<string> {
    const c = await this.#ok({ type: ReqType.GET_ID, readLength: ID_BYTES }, "get id");
    const end = c.data!.indexOf(0);
    return new TextDecoder().decode(end < 0 ? c.data! : c.data!.subarray(0, end));
  }

  /** Closes the driver's eventfds (the server keeps its copies until SET_IRQS or disconnect). */
  [Symbol.dispose](): void {
    this.close();
  }

  close(): void {
    this.irqs?.close();
  }
}
