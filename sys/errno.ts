/**
 * The one errno table and the one errno-carrying error. Every layer's errors derive from
 * {@link ErrnoError}: `SysError` (a failed libc call, sys/ffi.ts), `GuestFault` (a bad guest
 * address, dma/), `VfioUserError` (a malformed or refused message, protocol/). The session is the
 * one place that turns any of them into an error reply with its errno.
 *
 * Pure: no FFI, so the codecs of protocol/ may import it.
 *
 * @module
 */

/** Linux (x86_64) errno values vfud uses. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
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
  ENOTDIR: 20,
  EINVAL: 22,
  EMFILE: 24,
  ENOSPC: 28,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  ENOSYS: 38,
  EBADMSG: 74,
  EOVERFLOW: 75,
  ENOTSOCK: 88,
  EMSGSIZE: 90,
  ENOTSUP: 95,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  ECANCELED: 125,
} as const;

/** An error carrying the errno that describes it (and that an error reply would carry). */
export class ErrnoError extends Error {
  /** The errno. */
  readonly errno: number;
  constructor(errno: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ErrnoError";
    this.errno = errno;
  }
}

/** The symbolic name of an errno ("EINVAL"), if the table has it. */
export function errnoName(errno: number): string | undefined {
  for (const [k, v] of Object.entries(Errno)) if (v === errno) return k;
  return undefined;
}

/** The errno of any error: its own when it carries one, else EIO. */
export function errnoOf(e: unknown): number {
  return e instanceof ErrnoError ? e.errno : Errno.EIO;
}

/** Whether `e` is an {@link ErrnoError} carrying `errno`. */
export function isErrno(e: unknown, errno: number): boolean {
  return e instanceof ErrnoError && e.errno === errno;
}
