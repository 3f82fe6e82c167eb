/**
 * Interrupt fds from a hostile client: a blocking eventfd whose counter is at its maximum would
 * make the interrupt write block forever. Received fds are made non-blocking; a signal that
 * cannot be delivered is logged and counted, never waited on.
 */
import assert from "node:assert/strict";
import { check, closeFd, libc } from "../../sys/ffi.ts";
import { C } from "../../sys/layout.ts";
import { assertServesFreshClient, connect, startVfud } from "./helpers.ts";

/** A blocking eventfd whose counter is at 0xfffffffffffffffe: one more write(1) would block. */
function fullBlockingEventfd(): number {
  const fd = check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC));
  const max = new BigUint64Array([0xfffffffffffffffen]);
  assert.equal(libc.write(fd, new Uint8Array(max.buffer), 8n), 8n);
  return fd;
}

const MSIX = 2, INTX = 0;
const DATA_NONE = 1, DATA_EVENTFD = 4, ACTION_TRIGGER = 32;

Deno.test("hostile irq: a full blocking eventfd never blocks vfud (trigger, then commands and SIGTERM)", async () => {
  await using v = await startVfud({ logLevel: "warning" });
  {
    await using c = await connect(v, { timeoutMs: 5_000 });
    for (const index of [MSIX, INTX]) {
      const fd = fullBlockingEventfd();
      try {
        await c.setIrqs({ index, flags: DATA_EVENTFD | ACTION_TRIGGER, count: 1, fds: [fd] });
        // ACTION_TRIGGER signals the vector's eventfd: with a full counter that write fails.
        await c.setIrqs({ index, flags: DATA_NONE | ACTION_TRIGGER, count: 1 });
      } finally {
        closeFd(fd);
      }
      // The daemon still answers (it used to sit in write() forever: no reply, no SIGTERM).
      assert.ok((await c.getInfo()).numRegions >= 9);
    }
  }
  await assertServesFreshClient(v);
  assert.match(v.log(), /interrupt.*not delivered|eventfd.*(full|EAGAIN)/i);
  assert.equal((await v.stop("SIGTERM")).code, 0);
});
