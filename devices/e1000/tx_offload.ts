/**
 * Transmit offloads on an assembled frame (SDM §3.3.5-3.3.7): TCP/UDP and IP checksum insertion
 * as a context descriptor describes it, the legacy descriptor's single checksum, TCP
 * segmentation (TSO, §3.5) and 802.1Q tag insertion (§3.3.3.1 VLE). Pure functions on bytes.
 *
 * Offsets come from the guest: anything outside the frame makes the offload a no-op (checksums)
 * or the frame invalid (TSO), never an exception.
 *
 * @module
 */
import { TUCMD } from "../../spec/e1000.ts";
import {
  finish,
  finishNonZero,
  fold,
  getU16,
  getU32,
  putU16,
  putU32,
  sumWords,
} from "./checksum.ts";

/** A TCP/IP context descriptor's fields (SDM §3.3.6, figure 3-10). */
export interface TxContext {
  /** IP checksum start, offset (where to store) and end (inclusive, 0 = end of frame). */
  ipcss: number;
  ipcso: number;
  ipcse: number;
  /** TCP/UDP checksum start, offset and end (inclusive, 0 = end of frame). */
  tucss: number;
  tucso: number;
  tucse: number;
  /** TSO payload length (bytes after the header). */
  paylen: number;
  /** TUCMD bits (TCP, IP, TSE...). */
  tucmd: number;
  /** TSO header length and maximum segment size. */
  hdrlen: number;
  mss: number;
}

/** Decodes a 16-byte context descriptor. */
export function parseContext(d: Uint8Array): TxContext {
  const dw2 = (d[8] | (d[9] << 8) | (d[10] << 16)) >>> 0;
  return {
    ipcss: d[0],
    ipcso: d[1],
    ipcse: d[2] | (d[3] << 8),
    tucss: d[4],
    tucso: d[5],
    tucse: d[6] | (d[7] << 8),
    paylen: dw2 & 0xfffff,
    tucmd: d[11],
    hdrlen: d[13],
    mss: d[14] | (d[15] << 8),
  };
}

/**
 * Computes the ones' complement checksum of `frame[start, end]` (`end` inclusive, 0 = last byte)
 * and stores it at `at`, as the hardware does for one checksum (SDM §3.3.5). Out-of-range offsets
 * leave the frame untouched.
 */
export function putChecksum(frame: Uint8Array, at: number, start: number, end: number): void {
  const stop = end && end < frame.length ? end + 1 : frame.length;
  if (start >= stop || at + 2 > stop) return;
  putU16(frame, at, finishNonZero(sumWords(frame, start, stop)));
}

/** POPTS-driven checksums of a non-TSO frame: TXSM → TCP/UDP, IXSM → IPv4 header. */
export function insertChecksums(frame: Uint8Array, ctx: TxContext, txsm: boolean, ixsm: boolean) {
  if (txsm) putChecksum(frame, ctx.tucso, ctx.tucss, ctx.tucse);
  if (ixsm) putChecksum(frame, ctx.ipcso, ctx.ipcss, ctx.ipcse);
}

/** Legacy descriptor IC: checksum from CSS to the end of the frame, stored at CSO (§3.3.3). */
export function legacyChecksum(frame: Uint8Array, cso: number, css: number): void {
  putChecksum(frame, cso, css, 0);
}

/** Inserts an 802.1Q tag (TPID `vet`, TCI `tci`) after the two addresses. */
export function insertVlan(frame: Uint8Array, vet: number, tci: number): Uint8Array {
  if (frame.length < 12) return frame;
  const out = new Uint8Array(frame.length + 4);
  out.set(frame.subarray(0, 12));
  putU16(out, 12, vet);
  putU16(out, 14, tci);
  out.set(frame.subarray(12), 16);
  return out;
}

/** Why a TSO context cannot be applied to a frame, or undefined when it can. */
export function tsoProblem(frame: Uint8Array, ctx: TxContext, ixsm: boolean): string | undefined {
  const tcp = (ctx.tucmd & TUCMD.TCP) !== 0;
  const ipv4 = (ctx.tucmd & TUCMD.IP) !== 0;
  const h = ctx.hdrlen;
  if (h === 0 || h > frame.length) return `header length ${h} outside frame of ${frame.length}`;
  if (ctx.mss === 0) return "MSS 0";
  if (ctx.tucss + (tcp ? 20 : 8) > h) return `TUCSS ${ctx.tucss} leaves no L4 header`;
  if (ctx.tucso + 2 > h) return `TUCSO ${ctx.tucso} outside header`;
  if (ctx.ipcss + (ipv4 ? 20 : 40) > h) return `IPCSS ${ctx.ipcss} leaves no IP header`;
  if (ixsm && ctx.ipcso + 2 > h) return `IPCSO ${ctx.ipcso} outside header`;
  return undefined;
}

/**
 * Splits a TSO frame (header of `ctx.hdrlen` bytes, then the payload) into segments of at most
 * `ctx.mss` payload bytes (SDM §3.5.1-3.5.4): each gets the header with the IPv4 total length
 * and identification (or IPv6 payload length), TCP sequence number (or UDP length) updated, PSH
 * and FIN only on the last segment, and its checksums when TXSM/IXSM ask (the TCP checksum field
 * holds the driver's pseudo-header sum without length; the segment's L4 length is added).
 * Call {@link tsoProblem} first.
 */
export function segment(
  frame: Uint8Array,
  ctx: TxContext,
  txsm: boolean,
  ixsm: boolean,
): Uint8Array[] {
  const h = ctx.hdrlen;
  const payload = frame.length - h;
  const out: Uint8Array[] = [];
  const seq0 = getU32(frame, ctx.tucss + 4);
  const id0 = getU16(frame, ctx.ipcss + 4);
  for (let off = 0, i = 0; off < payload || i === 0; off += ctx.mss, i++) {
    const n = Math.min(ctx.mss, payload - off);
    const seg = new Uint8Array(h + n);
    seg.set(frame.subarray(0, h));
    seg.set(frame.subarray(h + off, h + off + n), h);
    fixHeaders(seg, ctx, { seq: seq0 + off, id: id0 + i, last: off + n >= payload });
    if (txsm) {
      const at = ctx.tucso;
      putU16(seg, at, fold(getU16(seg, at) + seg.length - ctx.tucss));
      putChecksum(seg, at, ctx.tucss, 0);
    }
    if (ixsm) putChecksum(seg, ctx.ipcso, ctx.ipcss, ctx.ipcse);
    out.push(seg);
  }
  return out;
}

function fixHeaders(
  seg: Uint8Array,
  ctx: TxContext,
  at: { seq: number; id: number; last: boolean },
): void {
  if (ctx.tucmd & TUCMD.IP) {
    putU16(seg, ctx.ipcss + 2, seg.length - ctx.ipcss);
    putU16(seg, ctx.ipcss + 4, at.id & 0xffff);
  } else {
    putU16(seg, ctx.ipcss + 4, seg.length - ctx.ipcss - 40);
  }
  if (ctx.tucmd & TUCMD.TCP) {
    putU32(seg, ctx.tucss + 4, at.seq >>> 0);
    if (!at.last) seg[ctx.tucss + 13] &= ~0x09; // PSH, FIN
  } else {
    putU16(seg, ctx.tucss + 4, seg.length - ctx.tucss);
  }
}

/** Verifies a stored checksum: the sum over the covered bytes folds to 0xffff. */
export function checksumOk(frame: Uint8Array, start: number, end: number, extra = 0): boolean {
  return finish(sumWords(frame, start, end, extra)) === 0;
}
