import assert from "node:assert/strict";
import { listenFds, notify } from "./systemd.ts";
import { bindDatagram, recvDatagram } from "../sys/socket.ts";
import { closeFd } from "../sys/ffi.ts";

function env(vars: Record<string, string>) {
  const m = new Map(Object.entries(vars));
  return { get: (k: string) => m.get(k), delete: (k: string) => void m.delete(k), m };
}

Deno.test("systemd: LISTEN_FDS for this pid gives fds from 3 and is consumed", () => {
  const e = env({ LISTEN_PID: "42", LISTEN_FDS: "2", LISTEN_FDNAMES: "a:b" });
  assert.deepEqual(listenFds(e, 42), [3, 4]);
  assert.equal(e.m.size, 0);
});

Deno.test("systemd: LISTEN_FDS for another pid, or missing, gives none", () => {
  assert.deepEqual(listenFds(env({ LISTEN_PID: "41", LISTEN_FDS: "1" }), 42), []);
  assert.deepEqual(listenFds(env({ LISTEN_FDS: "1" }), 42), []);
  assert.deepEqual(listenFds(env({}), 42), []);
  assert.throws(() => listenFds(env({ LISTEN_PID: "42", LISTEN_FDS: "x" }), 42), /LISTEN_FDS/);
});

function receive(address: string, send: () => void): string {
  const fd = bindDatagram(address);
  try {
    send();
    const buf = new Uint8Array(256);
    const n = recvDatagram(fd, buf);
    assert.ok(n > 0, "no datagram");
    return new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    closeFd(fd);
  }
}

Deno.test("systemd: notify to a path socket", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/notify`;
    const got = receive(path, () => assert.ok(notify("READY=1", env({ NOTIFY_SOCKET: path }))));
    assert.equal(got, "READY=1");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("systemd: notify to an abstract socket (@name)", () => {
  const name = `@vfud-test-${Deno.pid}-${Math.random().toString(36).slice(2)}`;
  const got = receive(name, () => notify("STOPPING=1", env({ NOTIFY_SOCKET: name })));
  assert.equal(got, "STOPPING=1");
});

Deno.test("systemd: notify without NOTIFY_SOCKET does nothing; vsock is refused", () => {
  assert.equal(notify("READY=1", env({})), false);
  assert.throws(() => notify("READY=1", env({ NOTIFY_SOCKET: "vsock:2:1" })), /AF_UNIX/);
});
