/** SIGTERM and SIGINT: exit 0 within 2 s, socket file removed, clients dropped. */
import assert from "node:assert/strict";
import { VfioUserClient } from "../../client/mod.ts";
import { isSocket, scratch, startVfud, waitForSocket } from "./conventions_helpers.ts";

for (const sig of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`conventions: ${sig} exits 0 within 2 s and removes the socket`, async () => {
    await using s = await scratch();
    const path = `${s.dir}/vfud.sock`;
    await using v = startVfud([`--socket-path=${path}`, s.device]);
    await waitForSocket(v, path);
    const { code, ms } = await v.signal(sig);
    assert.equal(code, 0, v.output());
    assert.ok(ms < 2000, `took ${ms} ms`);
    assert.ok(!isSocket(path), "socket file removed");
    assert.match(v.output(), new RegExp(`${sig}: stopping[\\s\\S]*stopped`));
  });
}

Deno.test("conventions: SIGTERM with a client connected exits 0 within 2 s", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, s.device]);
  await waitForSocket(v, path);
  await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
  await c.version();
  await c.getInfo();
  const { code, ms } = await v.signal("SIGTERM");
  assert.equal(code, 0, v.output());
  assert.ok(ms < 2000, `took ${ms} ms`);
  assert.ok(!isSocket(path));
  await c.closed; // vfud dropped the client
  assert.ok(c.isClosed);
});
