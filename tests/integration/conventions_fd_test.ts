/** --fd with an inherited listening socket and with an inherited connected socket. */
import assert from "node:assert/strict";
import { VfioUserClient } from "../../client/mod.ts";
import { closeFd } from "../../sys/ffi.ts";
import { acceptUnix, listenUnix } from "../../sys/socket.ts";
import { isSocket, scratch, startVfud, waitFor } from "./conventions_helpers.ts";

Deno.test("conventions: --fd with a listening socket accepts clients, one after another", async () => {
  await using s = await scratch();
  const path = `${s.dir}/passed.sock`;
  await using v = startVfud(["--fd=3", s.device], { fd: { kind: "listen", path } });
  await waitFor(
    "vfud serving",
    () => /serving .* inherited listening fd 3/.test(v.output()) || undefined,
  );
  for (let i = 0; i < 2; i++) {
    {
      await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
      assert.equal((await c.version()).major, 0);
      assert.equal((await c.getInfo()).numRegions, 9);
    }
    // One client at a time: the next one is accepted once this one's teardown is over.
    await waitFor(
      "the session's end",
      () => (v.output().match(/client disconnected/g)?.length ?? 0) > i || undefined,
    );
  }
  const { code, ms } = await v.signal("SIGTERM");
  assert.equal(code, 0, v.output());
  assert.ok(ms < 2000);
  assert.ok(isSocket(path), "vfud removes only socket files it created");
});

Deno.test("conventions: --fd with a connected socket serves it and exits when it leaves", async () => {
  await using s = await scratch();
  const path = `${s.dir}/harness.sock`;
  const lfd = listenUnix(path);
  try {
    await using v = startVfud(["--fd=3", s.device], { fd: { kind: "connect", path } });
    const fd = await waitFor("vfud to connect", () => {
      const fd = acceptUnix(lfd);
      return fd < 0 ? undefined : fd;
    });
    const c = new VfioUserClient(fd, { timeoutMs: 10_000 });
    assert.equal((await c.version()).major, 0);
    assert.equal((await c.getInfo()).numIrqs, 5);
    await c.close();
    assert.equal(await v.exited, 0, v.output());
    assert.match(v.output(), /inherited connected fd 3[\s\S]*client left: stopping[\s\S]*stopped/);
  } finally {
    closeFd(lfd);
  }
});
