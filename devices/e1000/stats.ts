/**
 * Statistics bookkeeping helpers (SDM §13.7): size-bucket counters and the transmit counters.
 *
 * @module
 */
import { ETH } from "../../spec/e1000.ts";
import { type MacRegisters, STATS } from "./regs.ts";
import { isBroadcast, isMulticast } from "./rx_filter.ts";

const RX_BUCKETS = [
  STATS.PRC64,
  STATS.PRC127,
  STATS.PRC255,
  STATS.PRC511,
  STATS.PRC1023,
  STATS.PRC1522,
];
const TX_BUCKETS = [
  STATS.PTC64,
  STATS.PTC127,
  STATS.PTC255,
  STATS.PTC511,
  STATS.PTC1023,
  STATS.PTC1522,
];
const LIMITS = [64, 127, 255, 511, 1023];

/** The size counter for a frame of `len` bytes including FCS (the last bucket takes all above). */
export function sizeBucket(dir: "rx" | "tx", len: number): number {
  const buckets = dir === "rx" ? RX_BUCKETS : TX_BUCKETS;
  const i = LIMITS.findIndex((l) => len <= l);
  return buckets[i < 0 ? buckets.length - 1 : i];
}

/** Counts one transmitted frame (without FCS): GPTC, GOTC, TPT, TOT, size, broadcast/multicast. */
export function countTx(regs: MacRegisters, frame: Uint8Array): void {
  const len = frame.length + ETH.FCS;
  regs.count(STATS.GPTC);
  regs.count(STATS.TPT);
  regs.count64(STATS.GOTC, len);
  regs.count64(STATS.TOT, len);
  regs.count(sizeBucket("tx", len));
  if (isBroadcast(frame)) regs.count(STATS.BPTC);
  else if (isMulticast(frame)) regs.count(STATS.MPTC);
}
