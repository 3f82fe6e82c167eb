/**
 * Timers and signals at full load (the shutdown deadline must fire whatever the load): vfud is
 * kept busy by a client flooding its socket and by an INTx resample fd that hangs up, then gets
 * SIGTERM. It must stop (cleanly: the serving thread still answers its stop request) instead of
 * ignoring the signal.
 *
 * @module
 */
import assert from "node:assert/strict";
import { IrqSetFlags as IrqFlags } from "../../protocol/irq.ts";
import { check, closeFd, libc } from "../../sys/ffi.ts";
import { C } from "../../sys/layout.ts";
import { EventFd, sleep, withTimeout } from "../../client/mod.ts";
import { connect, startVfud } from "./helpers.ts";

function hungUpPipe(): number {
  const fds = new Int32Array(2);
  check("pipe2", libc.pipe2(new Uint8Array(fds.buffer), C.O_CLOEXEC | 0o4000));
  closeFd(fds[1]);
  return fds[0];
}

Deno.test("load: SIGTERM stops vfud while its socket is flooded and a resample fd hung up", async () => {
  await using vfud = await startVfud({ logLevel: "info" });
  const c = await connect(vfud);
  const trigger = new EventFd();
  const resample = hungUpPipe();
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const flood = new Worker(new URL("./flood_worker.ts", import.meta.url), { type: "module" });
  try {
    await c.setIrqs({
      index: 0,
      flags: IrqFlags.DATA_EVENTFD | IrqFlags.ACTION_TRIGGER,
      count: 1,
      fds: [trigger.fd],
    });
    await c.setIrqs({
      index: 0,
      flags: IrqFlags.DATA_EVENTFD | IrqFlags.ACTION_UNMASK,
      count: 1,
      fds: [resample],
    });
    let started!: () => void;
    const running = new Promise<void>((r) => started = r);
    const sent = new Promise<number>((r) =>
      flood.onmessage = (ev) => ev.data.started ? started() : r(ev.data.sent)
    );
    flood.postMessage({ fd: c.fd, stop: stop.buffer });
    await withTimeout(running, 20_000, "flood started");
    await sleep(300); // saturated by now
    const t0 = performance.now();
    const status = await vfud.stop("SIGTERM"); // bounded: SIGKILL after 15 s
    const ms = performance.now() - t0;
    Atomics.store(stop, 0, 1);
    assert.ok((await sent) > 0, "the flood sent nothing");
    assert.equal(
      status.signal,
      null,
      `vfud ignored SIGTERM for ${ms.toFixed(0)} ms:\n${vfud.log()}`,
    );
    assert.equal(status.code, 0, vfud.log());
    assert.match(vfud.log(), /SIGTERM: stopping[\s\S]*stopped/);
  } finally {
    Atomics.store(stop, 0, 1);
    flood.terminate();
    trigger.close();
    closeFd(resample);
    await c.close().catch(() => {});
  }
});
