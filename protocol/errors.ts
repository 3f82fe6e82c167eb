/**
 * Typed errors that carry an errno. Handlers throw these; exactly one place (the session's
 * dispatcher) turns them into an error reply (vfio-user spec, "Header": an error reply is the
 * header alone with the ERROR flag and the errno in `error`).
 *
 * @module
 */

import { Errno, ErrnoError } from "../sys/errno.ts";

export { Errno };

/** An error that maps to a vfio-user error reply with `errno`. */
export class VfioUserError extends ErrnoError {
  constructor(errno: number, message: string) {
    super(errno, message);
    this.name = "VfioUserError";
  }
}

/** Throws `VfioUserError(EINVAL)` unless `cond` holds. For validating peer input. */
export function ensure(cond: boolean, message: string, errno: number = Errno.EINVAL): asserts cond {
  if (!cond) throw new VfioUserError(errno, message);
}
