import assert from "node:assert/strict";
import { ServiceStatus } from "./status.ts";

Deno.test("status: ready, client, request rate, client gone", () => {
  const sent: string[] = [];
  let requests = 0, now = 0;
  const s = new ServiceStatus(
    {
      notify: (m) => (sent.push(m), true),
      requests: () => requests,
      now: () => now,
    },
    "serving virtio-blk on /s",
    60_000,
  );
  s.ready();
  s.clientConnected("pid 7 (qemu), uid 0, gid 0");
  requests = 500;
  now = 5000;
  s.tick();
  s.clientLeft();
  s.stop();
  assert.deepEqual(sent, [
    "READY=1\nSTATUS=serving virtio-blk on /s; waiting for a client",
    "STATUS=serving virtio-blk on /s; client pid 7 (qemu), uid 0, gid 0",
    "STATUS=serving virtio-blk on /s; client pid 7 (qemu), uid 0, gid 0; 100 requests/s",
    "STATUS=serving virtio-blk on /s; waiting for a client",
  ]);
});

Deno.test("status: without a service manager nothing more is sent and no timer runs", () => {
  let calls = 0;
  const s = new ServiceStatus({ notify: () => (calls++, false), requests: () => 0 }, "x", 10);
  s.ready();
  s.clientConnected("p"); // would start the timer under a manager
  s.tick();
  s.stop();
  assert.equal(calls, 1);
});
