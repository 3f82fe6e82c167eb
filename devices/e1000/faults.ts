/**
 * Error text for the NIC's logs. Guest-memory faults (a range the guest did not map, or may not
 * write) are recognised with `instanceof GuestFault` (dma/guest_memory.ts) and handled like a PCI
 * master abort; anything else is a bug.
 *
 * @module
 */

/** A short text for logs. */
export function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
