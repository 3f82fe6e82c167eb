/**
 * Descriptor ring geometry from the base/length/head/tail registers (SDM §3.2.6 receive,
 * §3.4 transmit), validated against what the guest may have written, and the host interface the
 * ring engines share. Reading and writing runs of descriptors is the shared ring access of
 * devices/common/ring.ts.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { GuestMemory } from "../../dma/guest_memory.ts";
import type { RingLayout } from "../common/ring.ts";
import { DESC_SIZE } from "../../spec/e1000.ts";
import type { MacRegisters } from "./regs.ts";

/** Register offsets of one ring. */
export interface RingRegs {
  bal: number;
  bah: number;
  len: number;
  head: number;
  tail: number;
}

/** A usable ring: its descriptors and the hardware's head and the driver's tail. */
export interface Ring extends RingLayout {
  head: number;
  tail: number;
}

/**
 * Reads a ring's registers. Returns a problem description instead when the ring cannot be used:
 * length 0 (the register keeps only multiples of 128 bytes, SDM §13.4.27), or a head or tail
 * beyond the end (the hardware's behaviour is undefined; the model stops the ring).
 */
export function readRing(regs: MacRegisters, r: RingRegs): Ring | string {
  const bytes = regs.get(r.len);
  if (bytes === 0) return "ring length is 0";
  const count = bytes / DESC_SIZE;
  const head = regs.get(r.head);
  const tail = regs.get(r.tail);
  if (head >= count) return `head ${head} beyond ring of ${count} descriptors`;
  if (tail >= count) return `tail ${tail} beyond ring of ${count} descriptors`;
  const base = (BigInt(regs.get(r.bah)) << 32n) | BigInt(regs.get(r.bal));
  return { base, count, entrySize: DESC_SIZE, head, tail };
}

/** What the ring engines need from the device. */
export interface EngineHost {
  readonly regs: MacRegisters;
  readonly log: Logger;
  /** Guest memory while DMA is possible (a context is attached and bus mastering is on). */
  dma(): GuestMemory | undefined;
  /** Latches interrupt causes. */
  raise(causes: number): void;
}
