/**
 * Typed errors that carry an errno. Handlers throw these; exactly one place (the session's
 * dispatcher) turns them into an error reply (vfio-user spec, "Header": an error reply is the
 * header alone with the ERROR flag and the errno in `error`).
 *
 * @module
 */

/** Linux errno values used by the protocol layer and the handlers. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  EROFS: 30,
  ERANGE: 34,
  ENOSYS: 38,
  ENOTSUP: 95,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
} as const;

/** An error that maps to a vfio-user error reply with `errno`. */
export class VfioUserError extends Error {
  /** The errno sent in the error reply. */
  readonly errno: number;
  constructor(errno: number, message: string) {
    super(message);
    this.name = "VfioUserError";
    this.errno = errno;
  }
}

/** Throws `VfioUserError(EINVAL)` unless `cond` holds. For validating peer input. */
export function ensure(cond: boolean, message: string, errno: number = Errno.EINVAL): asserts cond {
  if (!cond) throw new VfioUserError(errno, message);
}
