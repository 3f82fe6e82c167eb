/**
 * Classifying errors from guest memory accesses: a range the guest did not map (or may not
 * write) is the guest's fault and handled like a PCI master abort; anything else is a bug.
 *
 * @module
 */
import { Errno, VfioUserError } from "../../protocol/errors.ts";

/** True for VfioUserError EFAULT/E2BIG/EINVAL: the address or length the guest gave is bad. */
export function isGuestFault(e: unknown): boolean {
  return e instanceof VfioUserError &&
    (e.errno === Errno.EFAULT || e.errno === Errno.E2BIG || e.errno === Errno.EINVAL);
}

/** A short text for logs. */
export function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
