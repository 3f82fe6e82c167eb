import assert from "node:assert/strict";
import { absentMemory, GuestFault } from "./guest_memory.ts";
import { Errno, ErrnoError } from "../sys/errno.ts";

Deno.test("GuestFault is an ErrnoError naming the guest range", () => {
  const e = new GuestFault(Errno.EROFS, 0x1000n, 16, "map is read-only");
  assert.ok(e instanceof ErrnoError);
  assert.equal(e.errno, Errno.EROFS);
  assert.equal(e.name, "GuestFault");
  assert.equal(e.addr, 0x1000n);
  assert.equal(e.length, 16);
  assert.match(e.message, /\[0x1000, \+0x10\): map is read-only/);
});

Deno.test("absent memory rejects every access with GuestFault EFAULT, never throws", async () => {
  const mem = absentMemory("no client");
  const fault = (e: unknown) => e instanceof GuestFault && e.errno === Errno.EFAULT;
  await assert.rejects(() => mem.map(8n, 4, true), fault);
  await assert.rejects(() => mem.transfer(8n, 4, false, () => {}), fault);
  await assert.rejects(() => mem.transferv([{ addr: 8n, len: 4 }], false, () => {}), fault);
  await assert.rejects(() => mem.read(8n, new Uint8Array(4)), fault);
  await assert.rejects(() => mem.write(8n, new Uint8Array(4)), fault);
});
