/**
 * Receive address filtering (SDM §3.2.1): VLAN filter table, broadcast/multicast/unicast
 * promiscuous modes, exact matches against the 16 Receive Address registers and the 4096-bit
 * Multicast Table Array hash.
 *
 * @module
 */
import { R, RA_ENTRIES, RAH_AV, RCTL } from "../../spec/e1000.ts";
import { getU16 } from "./checksum.ts";
import type { MacRegisters } from "./regs.ts";

/** Outcome of filtering one frame. */
export type FilterResult = "reject" | "exact" | "inexact";

/** True when the frame's destination is a group (multicast or broadcast) address. */
export function isMulticast(frame: Uint8Array): boolean {
  return (frame[0] & 1) === 1;
}

/** True for ff:ff:ff:ff:ff:ff. */
export function isBroadcast(frame: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (frame[i] !== 0xff) return false;
  return true;
}

/**
 * The 12-bit MTA hash of a destination address for RCTL.MO (SDM §13.4.22 "Multicast Offset"):
 * MO 0 takes address bits [47:36], 1 [46:35], 2 [45:34], 3 [43:32].
 */
export function mtaHash(addr: Uint8Array, mo: number): number {
  const shift = [4, 3, 2, 0][mo & 3];
  return ((addr[4] >> shift) | (addr[5] << (8 - shift))) & 0xfff;
}

function raMatch(regs: MacRegisters, frame: Uint8Array): boolean {
  const lo = (frame[0] | (frame[1] << 8) | (frame[2] << 16) | (frame[3] << 24)) >>> 0;
  const hi = frame[4] | (frame[5] << 8);
  for (let i = 0; i < RA_ENTRIES; i++) {
    const rah = regs.get(R.RA + 8 * i + 4);
    // Address Select 00b: the entry matches destination addresses.
    if (!(rah & RAH_AV) || (rah >>> 16) & 3) continue;
    if (regs.get(R.RA + 8 * i) === lo && (rah & 0xffff) === hi) return true;
  }
  return false;
}

function mtaMatch(regs: MacRegisters, frame: Uint8Array, rctl: number): boolean {
  const h = mtaHash(frame, (rctl >>> RCTL.MO_SHIFT) & 3);
  return ((regs.get(R.MTA + 4 * (h >>> 5)) >>> (h & 31)) & 1) === 1;
}

/** VLAN filter (RCTL.VFE): a tagged frame passes only if its VID's VFTA bit is set. */
function vlanPasses(regs: MacRegisters, frame: Uint8Array, rctl: number): boolean {
  if (!(rctl & RCTL.VFE) || frame.length < 18) return true;
  if (getU16(frame, 12) !== (regs.get(R.VET) & 0xffff)) return true;
  const vid = getU16(frame, 14) & 0xfff;
  return ((regs.get(R.VFTA + 4 * (vid >>> 5)) >>> (vid & 31)) & 1) === 1;
}

/** Decides whether a received frame (at least 14 bytes) is for this station. */
export function filterFrame(regs: MacRegisters, frame: Uint8Array): FilterResult {
  const rctl = regs.get(R.RCTL);
  if (!vlanPasses(regs, frame, rctl)) return "reject";
  const group = isMulticast(frame);
  if (group) {
    if (isBroadcast(frame) && rctl & RCTL.BAM) return "exact";
    if (rctl & RCTL.MPE) return "exact";
  } else if (rctl & RCTL.UPE) {
    return "exact";
  }
  if (raMatch(regs, frame)) return "exact";
  if (group && mtaMatch(regs, frame, rctl)) return "inexact";
  return "reject";
}
