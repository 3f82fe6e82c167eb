/** systemd socket activation (LISTEN_PID/LISTEN_FDS, fd 3) and sd_notify READY=1/STOPPING=1. */
import assert from "node:assert/strict";
import { VfioUserClient } from "../../client/mod.ts";
import {
  isListening,
  isSocket,
  NotifyListener,
  runVfud,
  scratch,
  startVfud,
  waitFor,
} from "./conventions_helpers.ts";

async function activated(notifyAddress: (dir: string) => string): Promise<void> {
  await using s = await scratch();
  const path = `${s.dir}/activated.sock`;
  using notify = new NotifyListener(notifyAddress(s.dir));
  await using v = startVfud([s.device], {
    fd: { kind: "activate", path },
    env: { NOTIFY_SOCKET: notify.address },
  });
  const ready = await notify.next();
  assert.match(
    ready,
    /^READY=1\nSTATUS=serving virtio-blk on socket-activated listening fd 3 \(\S+\/activated\.sock\) \(\S+\/disk\.img: 1 MiB \(1048576 bytes\), read-write\); waiting for a client$/,
  );
  {
    await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
    assert.equal((await c.version()).major, 0);
    assert.match(await notify.next(), new RegExp(`^STATUS=serving .*; client pid ${Deno.pid} \\(`));
  }
  assert.match(await notify.next(), /^STATUS=serving .*; waiting for a client$/);
  const stopped = v.signal("SIGTERM");
  assert.equal(await notify.next(), "STOPPING=1");
  const { code, ms } = await stopped;
  assert.equal(code, 0, v.output());
  assert.ok(ms < 2000);
  assert.ok(isSocket(path), "the activated socket belongs to systemd, not vfud");
}

Deno.test("conventions: socket activation, NOTIFY_SOCKET as a path", async () => {
  await activated((dir) => `${dir}/notify`);
});

Deno.test("conventions: socket activation, NOTIFY_SOCKET in the abstract namespace", async () => {
  await activated(() => `@vfud-conventions-${Deno.pid}-${crypto.randomUUID()}`);
});

Deno.test("conventions: LISTEN_FDS meant for another process is ignored", async () => {
  await using s = await scratch();
  const r = await runVfud([s.device], { LISTEN_PID: "1", LISTEN_FDS: "1" });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /give exactly one of --socket-path=PATH and --fd=N/);
});

Deno.test("conventions: systemd-socket-activate starts vfud on the first connection", async () => {
  await using s = await scratch();
  const path = `${s.dir}/ssa.sock`;
  using notify = new NotifyListener(`${s.dir}/notify`);
  await using v = startVfud([s.device], {
    wrapper: ["systemd-socket-activate", "-l", path, `--setenv=NOTIFY_SOCKET=${notify.address}`],
  });
  await waitFor("the listening socket", () => isListening(path) || undefined);
  {
    // systemd-socket-activate execs vfud when the first client connects.
    await using c = await VfioUserClient.connect(path, { timeoutMs: 20_000 });
    assert.match(await notify.next(), /^READY=1/);
    await c.version();
    assert.equal((await c.getInfo()).numRegions, 9);
  }
  assert.equal((await v.signal("SIGTERM")).code, 0, v.output());
});
