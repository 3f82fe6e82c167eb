/**
 * The receive unit (SDM §3.2): frames from the wire are filtered, VLAN-stripped, checksummed and
 * given their FCS, then wait in the on-chip packet buffer (its size is PBA's receive allocation,
 * SDM §13.4.14) until descriptors between RDH and RDT take them, split over as many buffers of
 * RCTL.BSIZE as needed. Descriptors get DD/EOP, length, status, errors and checksum written
 * back; RXT0 follows each frame and RXDMT0 when free descriptors fall to the RDMTS threshold.
 * Nothing here blocks the event loop: frames are queued and DMA runs asynchronously.
 *
 * Backpressure: unlike the hardware, which drops what its full packet buffer cannot take, the
 * engine tells the backend when it cannot receive ({@link RxEngine.canReceive}): as soon as a
 * frame waits for descriptors (counted once in RNBC), or when the buffer has no room left for the
 * largest frame. The backend then stops reading (the kernel queues for us) and is told to resume
 * when that may have changed: descriptors given (RDT), the receiver enabled, a frame delivered, a
 * flush or reset. Frames are only really dropped (MPC, RXO) when a source that cannot be paused
 * (MAC loopback, a test backend) overfills the buffer, when a frame can never fit in the ring,
 * or while the ring is stopped after a fault.
 *
 * Pausing stops between frames: the frame being written completes, later ones wait in the
 * buffer, which is part of the saved state (a destination delivers them), and the backend is
 * held off meanwhile.
 *
 * @module
 */
import { GuestFault, type GuestMemory, isDmaPaused } from "../../dma/guest_memory.ts";
import type { RecordReader, RecordValue } from "../../protocol/record.ts";
import { CTRL, DESC_SIZE, ETH, ICR, R, RCTL, RXD_ERR, RXD_STA } from "../../spec/e1000.ts";
import { crc32, getU16 } from "./checksum.ts";
import { describeError } from "./faults.ts";
import { type EngineHost, readRing, type Ring, type RingRegs } from "./ring.ts";
import { readEntries, ringDistance, writeEntries } from "../common/ring.ts";
import { SerialRunner } from "../common/serial_runner.ts";
import { filterFrame, isBroadcast, isMulticast } from "./rx_filter.ts";
import { rxChecksum } from "./rx_offload.ts";
import { STATS } from "./regs.ts";
import { sizeBucket } from "./stats.ts";

/** What the receive engine needs besides the common host. */
export interface RxHost extends EngineHost {
  /** MAC link up (frames are only received with link). */
  linkUp(): boolean;
  /** The engine can receive again after it said it could not: the backend may read on. */
  resume(): void;
}

/** A frame accepted by the filters, waiting in the packet buffer. */
interface PendingFrame {
  /** Frame bytes including the FCS (unless RCTL.SECRC). */
  data: Uint8Array;
  status: number;
  errors: number;
  csum: number;
  special: number;
  waitCounted: boolean;
}

const RX_RING: RingRegs = { bal: R.RDBAL, bah: R.RDBAH, len: R.RDLEN, head: R.RDH, tail: R.RDT };
/** Smallest packet buffer, whatever PBA says. */
const MIN_FIFO = 16 * 1024;

/** Receive buffer size from RCTL.BSIZE and BSEX (SDM §13.4.22). */
export function bufferSize(rctl: number): number {
  const bsize = (rctl >>> RCTL.BSIZE_SHIFT) & 3;
  if (rctl & RCTL.BSEX) return bsize === 0 ? 2048 : [0, 16384, 8192, 4096][bsize];
  return [2048, 1024, 512, 256][bsize];
}

/** The receive unit of one NIC. */
export class RxEngine {
  readonly #host: RxHost;
  readonly #runner: SerialRunner;
  #fifo: PendingFrame[] = [];
  #fifoBytes = 0;
  #epoch = 0;
  #stopped: string | undefined;
  /** The frame at the head of the buffer found too few descriptors; cleared by a kick. */
  #starved = false;
  /** canReceive() said no since the last resume: the backend is (probably) paused. */
  #refused = false;
  #resumeQueued = false;

  constructor(host: RxHost) {
    this.#host = host;
    this.#runner = new SerialRunner(() => this.#drain(), (e) => this.#stop(describeError(e)));
  }

  /** Why the ring is stopped (until reprogrammed or reset), if it is. */
  get stopped(): string | undefined {
    return this.#stopped;
  }

  /** Frames waiting for descriptors. */
  get pending(): number {
    return this.#fifo.length;
  }

  /** True while frames wait for descriptors (the backend is held off). */
  get starved(): boolean {
    return this.#starved;
  }

  /**
   * Whether a frame from the backend can be taken now without waiting for descriptors and
   * without a drop. Also true while the unit takes no frames at all (receiver disabled, no link,
   * ring stopped): those are dropped as by the hardware, and the peer is not held up by a guest
   * that does not receive.
   */
  canReceive(): boolean {
    if (this.#runner.paused) {
      this.#refused = true; // the backend holds what comes meanwhile
      return false;
    }
    const rctl = this.#host.regs.get(R.RCTL);
    if (!(rctl & RCTL.EN) || !this.#host.linkUp() || this.#stopped !== undefined) return true;
    const ok = !this.#starved && this.#fifoBytes + largestFrame(rctl) <= this.#capacity();
    if (!ok) this.#refused = true;
    return ok;
  }

  /** Stops after the frame being written; resolves when no DMA is in flight. */
  pause(): Promise<void> {
    return this.#runner.pause();
  }

  /**
   * Delivers what waits and lets the backend hand over what it held (frames it read while the
   * unit was paused, or a restored NIC's) and read again.
   */
  resume(): void {
    this.#runner.resume();
    this.#refused = true;
    this.kick();
  }

  /** The unit's state (paused): the frames in the packet buffer. */
  save(): RecordValue {
    return {
      fifo: this.#fifo.map((f) => ({
        data: f.data.slice(),
        status: f.status,
        errors: f.errors,
        csum: f.csum,
        special: f.special,
        waitCounted: f.waitCounted,
      })),
      stopped: this.#stopped ?? null,
      starved: this.#starved,
    };
  }

  /**
   * Checks a saved state; the frames must fit in a packet buffer of `capacity` bytes. Returns the
   * function that loads it.
   */
  parse(r: RecordReader, capacity: number): () => void {
    let bytes = 0;
    const fifo: PendingFrame[] = r.recs("fifo", capacity).map((f) => {
      const frame: PendingFrame = {
        data: f.bytes("data", { max: ETH.MAX_JUMBO + ETH.FCS }),
        status: f.uint("status", 8),
        errors: f.uint("errors", 8),
        csum: f.uint("csum", 16),
        special: f.uint("special", 16),
        waitCounted: f.bool("waitCounted"),
      };
      f.done();
      if (frame.data.length < ETH.HEADER) f.fail("data", "shorter than an Ethernet header");
      bytes += frame.data.length;
      return frame;
    });
    if (bytes > Math.max(MIN_FIFO, capacity)) {
      r.fail("fifo", `${bytes} bytes in a packet buffer of ${capacity}`);
    }
    const stopped = r.optStr("stopped", 512);
    const starved = r.bool("starved");
    r.done();
    return () => {
      this.#fifo = fifo;
      this.#fifoBytes = bytes;
      this.#stopped = stopped;
      this.#starved = starved;
    };
  }

  /** RDT written, the unit enabled, settings changed: deliver waiting frames, receive again. */
  kick(): void {
    this.#starved = false;
    if (this.#fifo.length) this.#runner.kick();
    this.#wakeBackend();
  }

  /** The driver rewrote ring registers: a stopped ring may work again. */
  reprogrammed(): void {
    this.#stopped = undefined;
  }

  /** Drops waiting frames (RCTL.EN cleared, reset); in-flight DMA is abandoned. */
  flush(): void {
    this.#epoch++;
    this.#fifo = [];
    this.#fifoBytes = 0;
    this.#starved = false;
    this.#wakeBackend();
  }

  /** Power-on state; resolves when no DMA is in flight. */
  reset(): Promise<void> {
    this.flush();
    this.#stopped = undefined;
    return this.#runner.whenIdle();
  }

  /** Resolves when no DMA is in flight. */
  whenIdle(): Promise<void> {
    return this.#runner.whenIdle();
  }

  /** A frame (without FCS) arrived from the wire or from loopback. */
  receive(frame: Uint8Array): void {
    const regs = this.#host.regs;
    const rctl = regs.get(R.RCTL);
    if (!(rctl & RCTL.EN) || !this.#host.linkUp() || frame.length < ETH.HEADER) return;
    regs.count(STATS.TPR);
    regs.count64(STATS.TOR, Math.max(frame.length, ETH.MIN_FRAME) + ETH.FCS);
    const pending = this.#accept(frame, rctl);
    if (!pending) return;
    if (this.#stopped !== undefined) {
      regs.count(STATS.MPC); // RXO was raised when the ring stopped
      return;
    }
    if (this.#fifoBytes + pending.data.length > this.#capacity()) {
      regs.count(STATS.MPC);
      this.#host.raise(ICR.RXO);
      return;
    }
    this.#fifo.push(pending);
    this.#fifoBytes += pending.data.length;
    this.#runner.kick();
  }

  /** Size limits, address filters, VLAN stripping, checksums and FCS. */
  #accept(input: Uint8Array, rctl: number): PendingFrame | undefined {
    const regs = this.#host.regs;
    let frame = input;
    if (frame.length < ETH.MIN_FRAME) {
      frame = new Uint8Array(ETH.MIN_FRAME);
      frame.set(input);
    }
    const vet = regs.get(R.VET) & 0xffff;
    const tagged = frame.length >= 18 && getU16(frame, 12) === vet;
    const limit = rctl & RCTL.LPE ? ETH.MAX_JUMBO : ETH.MAX_STD + (tagged ? ETH.VLAN_TAG : 0);
    if (frame.length + ETH.FCS > limit) {
      regs.count(STATS.ROC);
      return undefined;
    }
    const match = filterFrame(regs, frame);
    if (match === "reject") return undefined;
    let status = match === "inexact" ? RXD_STA.PIF : 0;
    let special = 0;
    if (tagged && regs.get(R.CTRL) & CTRL.VME) {
      special = getU16(frame, 14);
      status |= RXD_STA.VP;
      const stripped = new Uint8Array(frame.length - ETH.VLAN_TAG);
      stripped.set(frame.subarray(0, 12));
      stripped.set(frame.subarray(16), 12);
      frame = stripped;
    }
    const sum = rxChecksum(frame, regs.get(R.RXCSUM));
    return {
      data: rctl & RCTL.SECRC ? frame : withFcs(frame),
      status: status | sum.status,
      errors: sum.errors,
      csum: sum.csum,
      special,
      waitCounted: false,
    };
  }

  /** The packet buffer's size: PBA's receive allocation in KiB (SDM §13.4.14). */
  #capacity(): number {
    return packetBuffer(this.#host.regs.get(R.PBA));
  }

  /** Tells the backend (once, after the current work) if it was refused since the last time. */
  #wakeBackend(): void {
    if (!this.#refused || this.#resumeQueued) return;
    this.#resumeQueued = true;
    queueMicrotask(() => {
      this.#resumeQueued = false;
      this.#refused = false;
      this.#host.resume();
    });
  }

  #stop(reason: string): void {
    this.flush();
    if (this.#stopped) return;
    this.#stopped = reason;
    this.#host.log.warn("receive ring stopped: {reason}", { reason });
    this.#host.raise(ICR.RXO);
  }

  async #drain(): Promise<void> {
    const epoch = this.#epoch;
    try {
      while (this.#fifo.length && epoch === this.#epoch) {
        const mem = this.#canRun() ? this.#host.dma() : undefined;
        if (!mem) return;
        const ring = readRing(this.#host.regs, RX_RING);
        if (typeof ring === "string") return this.#stop(ring);
        const frame = this.#fifo[0];
        if (!(await this.#deliver(mem, ring, frame, epoch))) return;
      }
    } catch (e) {
      // A migration pause deferred the access: the frame waits in the buffer, delivered later.
      if (isDmaPaused(e)) return;
      if (epoch === this.#epoch) this.#stop(`descriptor access: ${describeError(e)}`);
    }
  }

  #canRun(): boolean {
    if (this.#runner.paused) return false;
    return (this.#host.regs.get(R.RCTL) & RCTL.EN) !== 0 && this.#stopped === undefined;
  }

  /** Writes one frame into descriptors; false when it has to wait for more of them. */
  async #deliver(mem: GuestMemory, ring: Ring, frame: PendingFrame, epoch: number) {
    const size = bufferSize(this.#host.regs.get(R.RCTL));
    const need = Math.ceil(frame.data.length / size);
    const descs = await this.#claim(mem, ring, need);
    if (epoch !== this.#epoch) return false;
    if (descs === "wait") {
      if (!frame.waitCounted) this.#host.regs.count(STATS.RNBC);
      frame.waitCounted = true;
      this.#starved = true;
      return false;
    }
    if (descs === "never") {
      // Even the whole ring cannot hold it: waiting would stall reception for good.
      this.#host.log.debug("receive: a {len}-byte frame needs {need} descriptors, dropped", {
        len: frame.data.length,
        need,
      });
      this.#dequeue(frame);
      this.#host.regs.count(STATS.MPC);
      this.#host.raise(ICR.RXO);
      return true;
    }
    await this.#fill(mem, descs, frame, size);
    if (epoch !== this.#epoch) return false;
    await writeEntries(mem, ring, ring.head, descs);
    if (epoch !== this.#epoch) return false;
    this.#dequeue(frame);
    const head = (ring.head + descs.length / DESC_SIZE) % ring.count;
    this.#host.regs.set(R.RDH, head);
    this.#count(frame.data);
    this.#host.raise(ICR.RXT0 | this.#threshold(ring, head));
    return true;
  }

  /**
   * The head frame left the buffer. Once it is half empty (not at the first free byte, which
   * would pause and resume the backend for every frame while DMA is the bottleneck), the backend
   * may read on.
   */
  #dequeue(frame: PendingFrame): void {
    this.#fifo.shift();
    this.#fifoBytes -= frame.data.length;
    this.#starved = false;
    const largest = largestFrame(this.#host.regs.get(R.RCTL));
    if (this.#fifo.length === 0 || this.#fifoBytes + largest <= this.#capacity() / 2) {
      this.#wakeBackend();
    }
  }

  /**
   * Reads descriptors from RDH until `need` of them have a buffer (null buffer addresses are
   * skipped, SDM §3.2.3). Returns "wait" when fewer are available before RDT, "never" when not
   * even the whole ring (all but one descriptor, RDT = RDH - 1) has enough.
   */
  async #claim(
    mem: GuestMemory,
    ring: Ring,
    need: number,
  ): Promise<Uint8Array | "wait" | "never"> {
    if (need > ring.count - 1) return "never";
    const avail = ringDistance(ring, ring.head, ring.tail);
    let descs = new Uint8Array(0);
    let usable = 0;
    while (usable < need) {
      const have = descs.length / DESC_SIZE;
      const more = Math.min(need - usable, avail - have);
      if (more <= 0) return avail === ring.count - 1 ? "never" : "wait";
      const next = await readEntries(mem, ring, (ring.head + have) % ring.count, more);
      const joined = new Uint8Array(descs.length + next.length);
      joined.set(descs);
      joined.set(next, descs.length);
      descs = joined;
      for (let i = have; i < have + more; i++) if (bufferAddr(descs, i) !== 0n) usable++;
    }
    return descs;
  }

  /** Copies the frame into the descriptors' buffers and fills in their write-back fields. */
  async #fill(mem: GuestMemory, descs: Uint8Array, frame: PendingFrame, size: number) {
    const view = new DataView(descs.buffer, descs.byteOffset, descs.byteLength);
    const count = descs.length / DESC_SIZE;
    let off = 0;
    let errors = 0;
    for (let i = 0; i < count; i++) {
      const at = i * DESC_SIZE;
      const addr = bufferAddr(descs, i);
      const chunk = addr === 0n ? 0 : Math.min(size, frame.data.length - off);
      if (chunk > 0 && !(await this.#copyOut(mem, addr, frame.data.subarray(off, off + chunk)))) {
        errors |= RXD_ERR.RXE;
      }
      off += chunk;
      const last = off >= frame.data.length;
      view.setUint16(at + 8, chunk, true);
      view.setUint16(at + 10, last ? frame.csum : 0, true);
      descs[at + 12] = RXD_STA.DD | (last ? RXD_STA.EOP | frame.status : 0);
      descs[at + 13] = errors | (last ? frame.errors : 0);
      view.setUint16(at + 14, last ? frame.special : 0, true);
    }
  }

  async #copyOut(mem: GuestMemory, addr: bigint, bytes: Uint8Array): Promise<boolean> {
    try {
      // The whole range receives frame bytes: no need to fetch the old ones first.
      await mem.transfer(addr, bytes.length, "overwrite", (segs, off) => {
        let o = off;
        for (const s of segs) {
          s.set(bytes.subarray(o, o + s.length));
          o += s.length;
        }
      });
      return true;
    } catch (e) {
      if (!(e instanceof GuestFault)) throw e;
      this.#host.log.debug("receive buffer 0x{addr}: {error}", {
        addr: addr.toString(16),
        error: describeError(e),
      });
      return false;
    }
  }

  /** RXDMT0 when free descriptors reach RCTL.RDMTS (1/2, 1/4, 1/8 of the ring). */
  #threshold(ring: Ring, head: number): number {
    const rdmts = (this.#host.regs.get(R.RCTL) >>> RCTL.RDMTS_SHIFT) & 3;
    const free = ringDistance(ring, head, this.#host.regs.get(R.RDT) % ring.count);
    return free <= ring.count >> (rdmts + 1) ? ICR.RXDMT0 : 0;
  }

  #count(data: Uint8Array): void {
    const regs = this.#host.regs;
    regs.count(STATS.GPRC);
    regs.count64(STATS.GORC, data.length);
    regs.count(sizeBucket("rx", data.length));
    if (isBroadcast(data)) regs.count(STATS.BPRC);
    else if (isMulticast(data)) regs.count(STATS.MPRC);
  }
}

/** The packet buffer's size for a PBA value: its receive allocation in KiB (SDM §13.4.14). */
export function packetBuffer(pba: number): number {
  return Math.max(MIN_FIFO, (pba & 0xffff) * 1024);
}

/** Bytes the largest acceptable frame takes in the packet buffer (with FCS and VLAN tag). */
function largestFrame(rctl: number): number {
  return rctl & RCTL.LPE ? ETH.MAX_JUMBO : ETH.MAX_STD + ETH.VLAN_TAG;
}

function bufferAddr(descs: Uint8Array, i: number): bigint {
  return new DataView(descs.buffer, descs.byteOffset + i * DESC_SIZE, 8).getBigUint64(0, true);
}

function withFcs(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(frame.length + ETH.FCS);
  out.set(frame);
  new DataView(out.buffer).setUint32(frame.length, crc32(frame), true);
  return out;
}
