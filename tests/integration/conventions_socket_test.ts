/** The socket file vfud creates: mode, stale sockets, files it must not replace. */
import assert from "node:assert/strict";
import { VfioUserClient } from "../../client/mod.ts";
import { closeFd } from "../../sys/ffi.ts";
import { listenUnix } from "../../sys/socket.ts";
import {
  isSocket,
  runVfud,
  runVfudAsNobody,
  scratch,
  startVfud,
  waitFor as waitUntil,
  waitForSocket,
} from "./conventions_helpers.ts";
import { groupName } from "../../sys/ids.ts";

async function modeOf(args: string[]): Promise<number> {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, s.device, ...args]);
  await waitForSocket(v, path);
  const mode = Deno.lstatSync(path).mode! & 0o777;
  assert.equal((await v.signal("SIGTERM")).code, 0);
  return mode;
}

Deno.test("conventions: the socket file is 0600 by default", async () => {
  assert.equal(await modeOf([]), 0o600);
});

Deno.test("conventions: --socket-mode sets another mode", async () => {
  assert.equal(await modeOf(["--socket-mode=0660"]), 0o660);
  assert.equal(await modeOf(["--socket-mode=666"]), 0o666);
});

Deno.test("conventions: a file that is not a socket is never replaced", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  Deno.writeTextFileSync(path, "precious");
  const r = await runVfud([`--socket-path=${path}`, s.device]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /exists and is not a socket: refusing to replace it/);
  assert.equal(Deno.readTextFileSync(path), "precious");
});

Deno.test("conventions: a live socket is not taken over", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  const fd = listenUnix(path);
  try {
    const r = await runVfud([`--socket-path=${path}`, s.device]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /in use by another server/);
    assert.ok(isSocket(path));
  } finally {
    closeFd(fd);
  }
});

Deno.test("conventions: a stale socket is replaced", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  closeFd(listenUnix(path)); // its server is gone: connect() is refused
  assert.ok(isSocket(path));
  await using v = startVfud([`--socket-path=${path}`, s.device]);
  await waitFor(v, path);
  {
    await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
    assert.equal((await c.version()).major, 0);
  }
  assert.equal((await v.signal("SIGTERM")).code, 0);
  assert.ok(!isSocket(path), "socket removed at exit");
});

/** Waits until vfud listens: the stale file exists from the start, so probe by connecting. */
async function waitFor(v: { output(): string; exited: Promise<number> }, path: string) {
  const deadline = Date.now() + 30_000;
  let exited = false;
  v.exited.then(() => exited = true);
  while (Date.now() < deadline && !exited) {
    if (/serving/.test(v.output())) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`vfud did not start on ${path}:\n${v.output()}`);
}

Deno.test("conventions: the socket file appears only once vfud listens (a supervisor may connect at once)", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  // strace holds vfud's listen() for half a second: were the file visible from bind() on, a
  // client connecting as soon as it exists would be refused all that time.
  const strace = [
    "strace",
    "-f",
    "-qq",
    "-o",
    "/dev/null",
    "--seccomp-bpf",
    "-e",
    "trace=listen",
    "-e",
    "inject=listen:delay_enter=500000",
  ];
  await using v = startVfud([`--socket-path=${path}`, s.device], { wrapper: strace });
  try {
    await waitUntil("the socket file", () => {
      if (/exited/.test(v.output())) throw new Error(v.output());
      return isSocket(path) ? true : undefined;
    }, 30_000);
    // The moment it exists, connect: this must be accepted (not ECONNREFUSED).
    await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
    assert.equal((await c.version()).major, 0);
  } finally {
    killTracees(v.child.pid);
  }
});

/** SIGKILLs what strace runs (strace leaves its tracees running when it is killed). */
function killTracees(pid: number): void {
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    const kids = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim();
    for (const k of kids.split(/\s+/).filter(Boolean)) {
      try {
        Deno.kill(Number(k), "SIGKILL");
      } catch { /* gone */ }
    }
  }
}

Deno.test("conventions: --socket-group gives the socket file a group, mode 0660 by default", async () => {
  const group = groupName(65534)!; // nogroup (Debian) or nobody
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, `--socket-group=${group}`, s.device]);
  await waitForSocket(v, path);
  const st = Deno.lstatSync(path);
  assert.equal(st.gid, 65534);
  assert.equal(st.mode! & 0o777, 0o660);
  assert.equal((await v.signal("SIGTERM")).code, 0);
});

Deno.test("conventions: a --socket-group vfud may not use is an error naming socket and group", async () => {
  await using s = await scratch();
  Deno.chmodSync(s.dir, 0o777);
  Deno.chmodSync(s.image, 0o666);
  const path = `${s.dir}/vfud.sock`;
  const args = [`--socket-path=${path}`, "--socket-group=root", s.device];
  const { code, stderr } = await runVfudAsNobody(s.dir, args);
  assert.equal(code, 1, stderr);
  assert.ok(stderr.includes(`chgrp root ${path}: Operation not permitted`), stderr);
  assert.ok(!isSocket(path), "the half-made socket is removed");
});
