/** vfud's command line as a process: usage errors, bad fds, one-shot commands, JSON logs. */
import assert from "node:assert/strict";
import { capabilities } from "../../util/capabilities.ts";
import { runVfud, scratch, startVfud, waitForSocket } from "./conventions_helpers.ts";

Deno.test("conventions: --socket-path and --fd together, or neither, exit 2", async () => {
  await using s = await scratch();
  const both = await runVfud([`--socket-path=${s.dir}/x.sock`, "--fd=3", s.device]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /give only one of --socket-path=PATH and --fd=N/);
  assert.match(both.stderr, /Try 'vfud --help'/);
  const neither = await runVfud([s.device]);
  assert.equal(neither.code, 2);
  assert.match(neither.stderr, /give exactly one of --socket-path=PATH and --fd=N/);
});

Deno.test("conventions: bad --fd values", async () => {
  await using s = await scratch();
  const notNumber = await runVfud(["--fd=abc", s.device]);
  assert.equal(notNumber.code, 2);
  assert.match(notNumber.stderr, /--fd: "abc" is not a file descriptor number/);
  const stdout = await runVfud(["--fd=1", s.device]);
  assert.equal(stdout.code, 2);
  const notOpen = await runVfud(["--fd=77", s.device]);
  assert.equal(notOpen.code, 1);
  assert.match(notOpen.stderr, /--fd=77: .*Bad file descriptor/);
  const notSocket = await runVfud(["--fd=0", s.device]); // stdin is /dev/null
  assert.equal(notSocket.code, 1);
  assert.match(notSocket.stderr, /--fd=0: .*not a socket/i);
});

Deno.test("conventions: a device that cannot be created exits 1", async () => {
  await using s = await scratch();
  const r = await runVfud([
    `--socket-path=${s.dir}/x.sock`,
    `--device=virtio-blk,file=${s.dir}/missing.img`,
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /missing\.img/);
});

Deno.test("conventions: --print-capabilities prints JSON from the device registry", async () => {
  const r = await runVfud(["--print-capabilities"]);
  assert.equal(r.code, 0, r.stderr);
  const caps = JSON.parse(r.stdout);
  assert.deepEqual(caps, JSON.parse(JSON.stringify(capabilities())));
  const blk = caps.devices.find((d: { type: string }) => d.type === "virtio-blk");
  assert.ok(blk, "virtio-blk listed");
  assert.ok(
    blk.options.some((o: { name: string; required: boolean }) => o.name === "file" && o.required),
  );
  assert.ok(caps.protocol.commands.includes("VERSION"));
  for (const c of ["DEVICE_FEATURE", "MIG_DATA_READ", "MIG_DATA_WRITE"]) {
    assert.ok(caps.protocol.commands.includes(c), `${c} served`);
  }
  assert.ok(caps.features.includes("migration") && caps.features.includes("dirty-page-logging"));
});

Deno.test("conventions: --version and --help", async () => {
  const v = await runVfud(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^vfud \d+\.\d+\.\d+/);
  const h = await runVfud(["--help"]);
  assert.equal(h.code, 0);
  for (const opt of ["--socket-path", "--socket-mode", "--fd", "--trace-protocol", "probe"]) {
    assert.ok(h.stdout.includes(opt), opt);
  }
});

Deno.test("conventions: --log-format=json writes JSON lines to stderr", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, s.device, "--log-format=json"]);
  await waitForSocket(v, path);
  assert.equal((await v.signal("SIGTERM")).code, 0);
  const lines = v.output().trim().split("\n");
  assert.ok(lines.length >= 2, v.output());
  for (const l of lines) {
    const rec = JSON.parse(l);
    assert.ok(rec.level && rec.message !== undefined && rec.logger, l);
  }
  assert.ok(lines.some((l) => JSON.parse(l).message.includes("stopped")));
});

Deno.test("conventions: --log-format=json messages are plain text, not quoted JSON strings", async () => {
  await using s = await scratch();
  const r = await runVfud([
    `--socket-path=${s.dir}/x.sock`,
    `--device=virtio-blk,file=${s.dir}/missing.img`,
    "--log-format=json",
  ]);
  assert.equal(r.code, 1);
  const rec = JSON.parse(r.stderr.trim().split("\n").at(-1)!);
  assert.equal(rec.level, "ERROR");
  assert.equal(rec.message, `open ${s.dir}/missing.img: No such file or directory (errno 2)`);
});
