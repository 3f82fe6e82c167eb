/**
 * Errors raised by the client library. Each carries an errno (the project's one error family,
 * sys/errno.ts), so callers can treat them like any other errno error.
 *
 * @module
 */
import { commandName } from "../protocol/header.ts";
import { Errno, ErrnoError } from "../sys/errno.ts";

export { Errno, ErrnoError };

/** The server answered a command with an error reply (flags REPLY|ERROR); `errno` is its errno. */
export class VfioUserRequestError extends ErrnoError {
  /** Command number of the failed request. */
  readonly cmd: number;
  /** Message id of the failed request. */
  readonly id: number;
  constructor(cmd: number, id: number, errno: number) {
    super(errno, `${commandName(cmd)} (id ${id}) failed: errno ${errno}`);
    this.name = "VfioUserRequestError";
    this.cmd = cmd;
    this.id = id;
  }
}

/** The connection ended before the awaited message arrived (ECONNRESET). */
export class ClientClosedError extends ErrnoError {
  constructor(what: string, cause?: Error) {
    super(Errno.ECONNRESET, `${what}: connection closed${cause ? ` (${cause.message})` : ""}`, {
      cause,
    });
    this.name = "ClientClosedError";
  }
}

/** A bounded wait ran out of time (ETIMEDOUT). */
export class WaitTimeoutError extends ErrnoError {
  constructor(what: string, ms: number) {
    super(Errno.ETIMEDOUT, `${what}: no result within ${ms} ms`);
    this.name = "WaitTimeoutError";
  }
}
