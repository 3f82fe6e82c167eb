/**
 * Errors raised by the test client.
 *
 * @module
 */
import { commandName } from "../../protocol/header.ts";

/** Linux errno values the tests look for. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EFAULT: 14,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ENOSYS: 38,
  ENOTSUP: 95,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
} as const;

/** The server answered a command with an error reply (flags REPLY|ERROR). */
export class VfioUserRequestError extends Error {
  /** The errno of the error reply. */
  readonly errno: number;
  /** Command number of the failed request. */
  readonly cmd: number;
  /** Message id of the failed request. */
  readonly id: number;
  constructor(cmd: number, id: number, errno: number) {
    super(`${commandName(cmd)} (id ${id}) failed: errno ${errno}`);
    this.name = "VfioUserRequestError";
    this.errno = errno;
    this.cmd = cmd;
    this.id = id;
  }
}

/** The connection ended before the awaited message arrived. */
export class ClientClosedError extends Error {
  /** Always ECONNRESET, so callers can treat it like an errno error. */
  readonly errno: number = Errno.ECONNRESET;
  constructor(what: string, cause?: Error) {
    super(`${what}: connection closed${cause ? ` (${cause.message})` : ""}`, { cause });
    this.name = "ClientClosedError";
  }
}

/** A bounded wait ran out of time. */
export class WaitTimeoutError extends Error {
  /** Always ETIMEDOUT. */
  readonly errno: number = Errno.ETIMEDOUT;
  constructor(what: string, ms: number) {
    super(`${what}: no result within ${ms} ms`);
    this.name = "WaitTimeoutError";
  }
}
