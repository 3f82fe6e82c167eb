/**
 * Assertions shared by the protocol tests (imported only by `*_test.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { VfioUserError } from "./errors.ts";

/** Asserts that `fn` throws a `VfioUserError` with `errno` (and a message matching `re`). */
export function assertErrno(fn: () => unknown, errno: number, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VfioUserError, `expected VfioUserError, got ${String(e)}`);
    assert.equal(e.errno, errno, `errno of "${e.message}"`);
    if (re !== undefined) assert.match(e.message, re);
    return true;
  });
}
