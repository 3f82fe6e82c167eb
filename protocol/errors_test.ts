import assert from "node:assert/strict";
import { ensure, Errno, VfioUserError } from "./errors.ts";
import { ErrnoError } from "../sys/errno.ts";
import { assertErrno } from "./testutil.ts";

Deno.test("VfioUserError carries its errno; ensure throws EINVAL by default", () => {
  const e = new VfioUserError(Errno.EFAULT, "bad address");
  assert.equal(e.errno, Errno.EFAULT);
  assert.ok(e instanceof ErrnoError);
  assert.equal(e.name, "VfioUserError");
  ensure(true, "fine");
  assertErrno(() => ensure(false, "nope"), Errno.EINVAL, /nope/);
  assertErrno(() => ensure(false, "busy", Errno.EBUSY), Errno.EBUSY);
});
