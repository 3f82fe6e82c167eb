import assert from "node:assert/strict";
import { ensure, Errno, VfioUserError } from "./errors.ts";
import { assertErrno } from "./testutil.ts";

Deno.test("VfioUserError carries its errno; ensure throws EINVAL by default", () => {
  const e = new VfioUserError(Errno.EFAULT, "bad address");
  assert.equal(e.errno, 14);
  assert.equal(e.name, "VfioUserError");
  ensure(true, "fine");
  assertErrno(() => ensure(false, "nope"), Errno.EINVAL, /nope/);
  assertErrno(() => ensure(false, "busy", Errno.EBUSY), Errno.EBUSY);
});
