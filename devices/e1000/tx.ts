/**
 * The transmit ring (SDM §3.3-3.5): descriptors from TDH up to TDT are fetched in batches,
 * legacy and extended (context + data) descriptors are assembled into frames up to EOP, offloads
 * are applied (checksums, TSO, VLAN tag, padding), frames go to the host, descriptors with RS get
 * DD written back (TXDW), and TXQE is raised when the ring is empty. TDT writes kick the engine;
 * processing is serialized and no kick is lost.
 *
 * A frame's descriptors complete once the frame is built: its segments wait in the unit's
 * transmit FIFO (the backlog) for the backend, and while that is congested the next descriptor
 * is not fetched (backpressure towards the guest). Pausing stops at a descriptor boundary; the
 * backlog, a half-assembled frame and the offload contexts are part of the saved state, so a
 * destination sends every frame exactly once.
 *
 * Guest mistakes never throw out of here: an unusable ring (length 0, head/tail beyond the end,
 * descriptors in unmapped memory) stops transmission until the driver reprograms the ring or
 * resets; a frame whose buffers are unmapped, too long, or whose TSO context is bogus is dropped
 * and its descriptors complete normally.
 *
 * @module
 */
import { GuestFault, type GuestMemory, isDmaPaused } from "../../dma/guest_memory.ts";
import {
  CTRL,
  DESC_SIZE,
  DTYP,
  ETH,
  ICR,
  POPTS,
  R,
  TCTL,
  TXD_CMD,
  TXD_STA,
} from "../../spec/e1000.ts";
import { type EngineHost, readRing, type RingRegs } from "./ring.ts";
import { entryAddr, readEntries, ringDistance } from "../common/ring.ts";
import { SerialRunner } from "../common/serial_runner.ts";
import { STATS } from "./regs.ts";
import {
  insertChecksums,
  insertVlan,
  legacyChecksum,
  parseContext,
  segment,
  tsoProblem,
  type TxContext,
} from "./tx_offload.ts";
import { describeError } from "./faults.ts";
import type { RecordReader, RecordValue } from "../../protocol/record.ts";
import { MAX_FRAME } from "../net/backend.ts";

/** What the transmit engine needs besides the common host. */
export interface TxHost extends EngineHost {
  /** Sends a finished frame (the backend, or the receiver in loopback mode). */
  transmit(frame: Uint8Array): void;
  /** A promise while the backend is congested, else undefined. */
  congestion(): Promise<void> | undefined;
}

const TX_RING: RingRegs = { bal: R.TDBAL, bah: R.TDBAH, len: R.TDLEN, head: R.TDH, tail: R.TDT };
/** Descriptors fetched per guest memory read. */
const BATCH = 32;
/** Longest non-TSO frame (jumbo, SDM §3.3.1). */
export const TX_MAX_FRAME = ETH.MAX_JUMBO;
/** Longest TSO frame accepted (header plus payload). */
export const TX_MAX_TSO = 256 * 1024;

/** A frame being assembled from descriptors. */
interface Assembly {
  started: boolean;
  size: number;
  extended: boolean;
  tse: boolean;
  popts: number;
  legacyCso: number;
  legacyCss: number;
  legacyIc: boolean;
  vlanTci: number | undefined;
  dropped: string | undefined;
}

function freshAssembly(): Assembly {
  return {
    started: false,
    size: 0,
    extended: false,
    tse: false,
    popts: 0,
    legacyCso: 0,
    legacyCss: 0,
    legacyIc: false,
    vlanTci: undefined,
    dropped: undefined,
  };
}

function u64(d: Uint8Array): bigint {
  const v = new DataView(d.buffer, d.byteOffset, 8);
  return v.getBigUint64(0, true);
}

/** Descriptor data length: 16 bits (legacy) or 20 bits DTALEN (extended data). */
function dataLength(d: Uint8Array, extended: boolean): number {
  return extended ? d[8] | (d[9] << 8) | ((d[10] & 0xf) << 16) : d[8] | (d[9] << 8);
}

/** The transmit unit of one NIC. */
export class TxEngine {
  readonly #host: TxHost;
  readonly #runner: SerialRunner;
  #epoch = 0;
  /** Resolved to break a congestion wait (reset, pause). */
  #abort = Promise.withResolvers<void>();
  #stopped: string | undefined;
  #csumCtx: TxContext | undefined;
  #tsoCtx: TxContext | undefined;
  #buf = new Uint8Array(2048);
  #frame = freshAssembly();
  /** Built frames the backend has not taken yet. */
  #backlog: Uint8Array[] = [];

  constructor(host: TxHost) {
    this.#host = host;
    this.#runner = new SerialRunner(() => this.#drain(), (e) => this.#stop(describeError(e)));
  }

  /** Why the ring is stopped (until reprogrammed or reset), if it is. */
  get stopped(): string | undefined {
    return this.#stopped;
  }

  /** Frames built and waiting for the backend. */
  get backlog(): number {
    return this.#backlog.length;
  }

  /** TDT was written or the unit enabled: process descriptors. */
  kick(): void {
    this.#runner.kick();
  }

  /** Stops at the next descriptor boundary; resolves when no descriptor is being processed. */
  pause(): Promise<void> {
    const idle = this.#runner.pause();
    this.#wake();
    return idle;
  }

  /** Processes what came meanwhile: kicks, the backlog, descriptors of a restored ring. */
  resume(): void {
    const ring = readRing(this.#host.regs, TX_RING);
    const work = typeof ring !== "string" && ring.head !== ring.tail;
    if (this.#backlog.length || work) this.#runner.kick();
    this.#runner.resume();
  }

  #wake(): void {
    this.#abort.resolve();
    this.#abort = Promise.withResolvers<void>();
  }

  /** The driver rewrote ring registers: a stopped ring may work again. */
  reprogrammed(): void {
    this.#stopped = undefined;
  }

  /** Drops partial frames and contexts; in-flight work is abandoned. */
  reset(): Promise<void> {
    this.#epoch++;
    this.#wake();
    this.#stopped = undefined;
    this.#csumCtx = this.#tsoCtx = undefined;
    this.#frame = freshAssembly();
    this.#backlog = [];
    return this.#runner.whenIdle();
  }

  /** Resolves when no descriptor is being processed. */
  whenIdle(): Promise<void> {
    return this.#runner.whenIdle();
  }

  #stop(reason: string): void {
    if (this.#stopped) return;
    this.#stopped = reason;
    this.#host.log.warn("transmit ring stopped: {reason}", { reason });
  }

  /** The unit's state (paused): contexts, the frame being assembled, the backlog. */
  save(): RecordValue {
    const f = this.#frame;
    const frame = !f.started ? null : {
      data: this.#buf.slice(0, f.size),
      extended: f.extended,
      tse: f.tse,
      popts: f.popts,
      legacyCso: f.legacyCso,
      legacyCss: f.legacyCss,
      legacyIc: f.legacyIc,
      vlanTci: f.vlanTci ?? null,
      dropped: f.dropped ?? null,
    };
    return {
      csum: this.#csumCtx ? { ...this.#csumCtx } : null,
      tso: this.#tsoCtx ? { ...this.#tsoCtx } : null,
      frame,
      backlog: this.#backlog.map((b) => b.slice()),
      stopped: this.#stopped ?? null,
    };
  }

  /** Checks a saved state; returns the function that loads it. */
  parse(r: RecordReader): () => void {
    const csum = parseCtx(r.optRec("csum"));
    const tso = parseCtx(r.optRec("tso"));
    const fr = r.optRec("frame");
    let frame = freshAssembly();
    let data: Uint8Array = new Uint8Array(0);
    if (fr) {
      const tse = fr.bool("tse");
      data = fr.bytes("data", { max: tse ? TX_MAX_TSO : TX_MAX_FRAME });
      const vlan = fr.any("vlanTci");
      frame = {
        started: true,
        size: data.length,
        extended: fr.bool("extended"),
        tse,
        popts: fr.uint("popts", 8),
        legacyCso: fr.uint("legacyCso", 8),
        legacyCss: fr.uint("legacyCss", 8),
        legacyIc: fr.bool("legacyIc"),
        vlanTci: vlan === null ? undefined : fr.uint("vlanTci", 16),
        dropped: fr.optStr("dropped", 512),
      };
      fr.done();
    }
    const backlog = r.list("backlog", 4096).map((b, i) => {
      if (!(b instanceof Uint8Array) || b.length === 0 || b.length > MAX_FRAME) {
        r.fail("backlog", `frame ${i} is not a frame`);
      }
      return b;
    });
    const stopped = r.optStr("stopped", 512);
    r.done();
    return () => {
      this.#csumCtx = csum;
      this.#tsoCtx = tso;
      this.#frame = frame;
      this.#reserve(data.length);
      this.#buf.set(data);
      this.#backlog = backlog;
      this.#stopped = stopped;
    };
  }

  #enabled(): boolean {
    return (this.#host.regs.get(R.TCTL) & TCTL.EN) !== 0 && this.#stopped === undefined;
  }

  async #drain(): Promise<void> {
    const epoch = this.#epoch;
    let causes = 0;
    try {
      for (;;) {
        await this.#flush(epoch);
        if (this.#runner.paused || epoch !== this.#epoch || this.#backlog.length) return;
        const mem = this.#enabled() ? this.#host.dma() : undefined;
        if (!mem) return;
        const ring = readRing(this.#host.regs, TX_RING);
        if (typeof ring === "string") return this.#stop(ring);
        if (ring.head === ring.tail) {
          causes |= ICR.TXQE;
          return;
        }
        const n = Math.min(ringDistance(ring, ring.head, ring.tail), BATCH);
        const descs = await readEntries(mem, ring, ring.head, n);
        for (let i = 0; i < n; i++) {
          if (epoch !== this.#epoch || this.#runner.paused) return;
          const d = descs.subarray(i * DESC_SIZE, (i + 1) * DESC_SIZE);
          await this.#descriptor(mem, d, epoch);
          if (epoch !== this.#epoch) return;
          const at = (ring.head + i) % ring.count;
          if (d[11] & TXD_CMD.RS) {
            await mem.write(entryAddr(ring, at) + 12n, Uint8Array.of(d[12] | TXD_STA.DD));
            causes |= ICR.TXDW;
          }
          this.#host.regs.set(R.TDH, (at + 1) % ring.count);
        }
      }
    } catch (e) {
      // A migration pause deferred the access: the descriptor is fetched again later.
      if (isDmaPaused(e)) return;
      if (epoch === this.#epoch) this.#stop(`descriptor access: ${describeError(e)}`);
    } finally {
      if (epoch === this.#epoch && causes) this.#host.raise(causes);
    }
  }

  async #descriptor(mem: GuestMemory, d: Uint8Array, epoch: number): Promise<void> {
    const cmd = d[11];
    const extended = (cmd & TXD_CMD.DEXT) !== 0;
    if (extended) {
      const dtyp = d[10] >> 4;
      if (dtyp === DTYP.CONTEXT) return this.#context(d);
      if (dtyp !== DTYP.DATA) return; // reserved type: consumed, ignored
    }
    const f = this.#frame;
    if (!f.started) {
      f.started = true;
      f.extended = extended;
      f.tse = extended && (cmd & TXD_CMD.TSE) !== 0;
      f.popts = extended ? d[13] : 0;
    }
    if (!extended && cmd & TXD_CMD.IC) {
      f.legacyIc = true;
      f.legacyCso = d[10];
      f.legacyCss = d[13];
    }
    if (cmd & TXD_CMD.VLE && (cmd & TXD_CMD.EOP || f.tse)) f.vlanTci = d[14] | (d[15] << 8);
    const len = dataLength(d, extended);
    if (len) await this.#append(mem, f, u64(d), len);
    if (epoch === this.#epoch && cmd & TXD_CMD.EOP) await this.#finish(epoch);
  }

  #context(d: Uint8Array): void {
    const ctx = parseContext(d);
    if (ctx.tucmd & TXD_CMD.TSE) this.#tsoCtx = ctx;
    else this.#csumCtx = ctx;
  }

  async #append(mem: GuestMemory, f: Assembly, addr: bigint, len: number): Promise<void> {
    if (f.dropped) return;
    const limit = f.tse ? TX_MAX_TSO : TX_MAX_FRAME;
    if (f.size + len > limit) {
      f.dropped = `frame longer than ${limit} bytes`;
      return;
    }
    this.#reserve(f.size + len);
    const buf = this.#buf;
    const at = f.size;
    try {
      await mem.transfer(addr, len, false, (segs, off) => {
        let o = at + off;
        for (const s of segs) {
          buf.set(s, o);
          o += s.length;
        }
      });
      f.size += len;
    } catch (e) {
      if (!(e instanceof GuestFault)) throw e;
      f.dropped = `buffer 0x${addr.toString(16)}+${len}: ${describeError(e)}`;
    }
  }

  #reserve(size: number): void {
    if (size <= this.#buf.length) return;
    let n = this.#buf.length;
    while (n < size) n *= 2;
    const bigger = new Uint8Array(n);
    bigger.set(this.#buf);
    this.#buf = bigger;
  }

  async #finish(epoch: number): Promise<void> {
    const f = this.#frame;
    this.#frame = freshAssembly();
    const frames = f.dropped ? undefined : this.#offload(f);
    if (!frames) {
      if (f.tse) this.#host.regs.count(STATS.TSCTFC);
      this.#host.log.debug("transmit frame dropped: {reason}", { reason: f.dropped ?? "empty" });
      return;
    }
    for (const frame of frames) this.#backlog.push(this.#finalize(frame, f));
    await this.#flush(epoch);
  }

  /** Hands backlog frames to the backend, waiting while it is congested, until paused or reset. */
  async #flush(epoch: number): Promise<void> {
    while (this.#backlog.length && !this.#runner.paused && epoch === this.#epoch) {
      const wait = this.#host.congestion();
      if (wait) {
        await Promise.race([wait, this.#abort.promise]);
        continue;
      }
      this.#host.transmit(this.#backlog.shift()!);
    }
  }

  /** Checksums or segmentation; undefined when the frame cannot be sent. */
  #offload(f: Assembly): Uint8Array[] | undefined {
    if (f.size === 0) return undefined;
    const data = this.#buf.slice(0, f.size);
    const txsm = (f.popts & POPTS.TXSM) !== 0;
    const ixsm = (f.popts & POPTS.IXSM) !== 0;
    if (f.tse) {
      const ctx = this.#tsoCtx;
      f.dropped = ctx ? tsoProblem(data, ctx, ixsm) : "TSO without a TSO context";
      if (f.dropped || !ctx) return undefined;
      this.#host.regs.count(STATS.TSCTC);
      return segment(data, ctx, txsm, ixsm);
    }
    if (f.extended && this.#csumCtx) insertChecksums(data, this.#csumCtx, txsm, ixsm);
    else if (f.legacyIc) legacyChecksum(data, f.legacyCso, f.legacyCss);
    return [data];
  }

  /** VLAN tag (CTRL.VME and VLE) and short-frame padding (TCTL.PSP). */
  #finalize(frame: Uint8Array, f: Assembly): Uint8Array {
    const regs = this.#host.regs;
    let out = frame;
    if (f.vlanTci !== undefined && regs.get(R.CTRL) & CTRL.VME) {
      out = insertVlan(out, regs.get(R.VET) & 0xffff, f.vlanTci);
    }
    if (regs.get(R.TCTL) & TCTL.PSP && out.length < ETH.MIN_FRAME) {
      const padded = new Uint8Array(ETH.MIN_FRAME);
      padded.set(out);
      out = padded;
    }
    return out;
  }
}

const CTX_FIELDS: readonly [keyof TxContext, number][] = [
  ["ipcss", 8],
  ["ipcso", 8],
  ["ipcse", 16],
  ["tucss", 8],
  ["tucso", 8],
  ["tucse", 16],
  ["paylen", 20],
  ["tucmd", 8],
  ["hdrlen", 8],
  ["mss", 16],
];

function parseCtx(r: RecordReader | undefined): TxContext | undefined {
  if (!r) return undefined;
  const ctx = Object.fromEntries(CTX_FIELDS.map(([k, bits]) => [k, r.uint(k, bits)]));
  r.done();
  return ctx as unknown as TxContext;
}
