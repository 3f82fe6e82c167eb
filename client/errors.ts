/**
 * Errors raised by the client library.
 *
 * @module
 */
import { commandName } from "../protocol/header.ts";

import { Errno } from "../sys/errno.ts";

export { Errno };

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
