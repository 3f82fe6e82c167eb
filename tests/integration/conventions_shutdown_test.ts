/** Shutdown with device requests in flight: they finish or fail, and vfud still exits in time. */
import assert from "node:assert/strict";
import { GuestArena, VfioUserClient, VirtioBlkDriver } from "../../client/mod.ts";
import { ReqType } from "../../spec/virtio_blk.ts";
import { Command, Flags } from "../../protocol/header.ts";
import {
  isSocket,
  REPO_ROOT,
  scratch,
  startVfud,
  waitFor,
  waitForSocket,
} from "./conventions_helpers.ts";

Deno.test("conventions: SIGTERM with a request stuck on unanswered DMA exits 0 within 2 s", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, s.device]);
  await waitForSocket(v, path);
  // Guest RAM without an fd: vfud must ask the client for every byte (DMA_READ), and this
  // client never answers.
  await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000, serveDma: false });
  await c.version();
  const ram = new Uint8Array(1 << 20);
  await c.dmaMap({ iova: 0n, size: BigInt(ram.length), backing: ram });
  const driver = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram) });
  driver.enqueue({ type: ReqType.OUT, sector: 0n, data: new Uint8Array(4096).fill(7) });
  await driver.kick();
  await waitFor(
    "vfud's DMA_READ",
    () =>
      c.unsolicited.some((m) =>
        m.header.cmd === Command.DMA_READ && (m.header.flags & Flags.TYPE_MASK) === 0
      ) || undefined,
  );
  const { code, ms } = await v.signal("SIGTERM");
  driver.close();
  assert.equal(code, 0, v.output());
  assert.ok(ms < 2000, `took ${ms} ms`);
  assert.match(v.output(), /SIGTERM: stopping[\s\S]*stopped/);
});

Deno.test("conventions: a flush that never ends is cut off by the deadline: exit 1 within 2 s", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vfud-conv-" });
  try {
    const image = `${dir}/disk.img`;
    await Deno.writeFile(image, new Uint8Array(1 << 16));
    const script = `${dir}/hang.ts`;
    // vfud's own main() with a device whose flush hangs, signalled by itself once serving.
    await Deno.writeTextFile(
      script,
      `import { DEVICE_TYPES } from "${REPO_ROOT}devices/mod.ts";
import { main } from "${REPO_ROOT}main.ts";
import { onWorkerThread } from "${REPO_ROOT}util/serving.ts";
import { serveWorkerMain } from "${REPO_ROOT}util/serve_worker.ts";
if (onWorkerThread()) {
  // the serving thread runs this module: its device's flush never ends
  const t = DEVICE_TYPES.get("virtio-blk") as unknown as { create: (o: unknown, e: unknown) => unknown };
  const create = t.create;
  t.create = (o, e) => {
    const d = create(o, e) as { flush?: () => Promise<void> };
    d.flush = () => new Promise(() => {});
    return d;
  };
  await serveWorkerMain();
} else {
const sock = "${dir}/vfud.sock";
const poll = setInterval(() => {
  try {
    if (Deno.lstatSync(sock).isSocket) {
      clearInterval(poll);
      globalThis.signalledAt = performance.now();
      Deno.kill(Deno.pid, "SIGTERM");
    }
  } catch { /* not yet */ }
}, 10);
globalThis.addEventListener("unload", () =>
  console.log("ms=" + Math.round(performance.now() - globalThis.signalledAt)));
Deno.exit(await main(["--socket-path=" + sock, "--device=virtio-blk,file=${image}"], {
  workerEntry: import.meta.url,
}));
}
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", `--config=${REPO_ROOT}deno.json`, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stdout + stderr);
    assert.match(stderr, /shutdown took over \d+ ms: exiting now/);
    const ms = Number(/ms=(\d+)/.exec(stdout)?.[1]);
    // The deadline is 1.9 s; allow for a late timer on a loaded machine.
    assert.ok(ms >= 1800 && ms < 2500, `exited ${ms} ms after the signal`);
    assert.ok(!isSocket(`${dir}/vfud.sock`), "socket removed even so");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
