/**
 * Bounds checking of peer-supplied (offset, length) pairs. Offsets come from the client (region
 * offsets are u64 on the wire), so every access is checked before any byte is touched.
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";

/**
 * Throws `ErrnoError(EINVAL)` unless `[offset, offset + length)` is a non-empty range inside
 * `[0, limit)`. `what` names the target in the error message.
 */
export function checkRange(offset: number, length: number, limit: number, what: string): void {
  if (
    !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 1 ||
    offset > limit || length > limit - offset
  ) {
    throw new ErrnoError(
      Errno.EINVAL,
      `${what}: access of ${length} byte(s) at ${offset} outside [0, ${limit})`,
    );
  }
}
