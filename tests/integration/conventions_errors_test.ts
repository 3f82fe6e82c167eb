/**
 * Errors a user meets: usage errors (exit 2, "Try 'vfud --help'", found before anything is
 * opened), runtime errors that name their file (exit 1), and the rules of one-shot commands.
 */
import assert from "node:assert/strict";
import {
  isListening,
  runVfud,
  runVfudAsNobody,
  scratch,
  VFUD,
  waitFor,
} from "./conventions_helpers.ts";

const HINT = /Try 'vfud --help' for more information/;

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("errors: bad option values exit 2 with the hint, and nothing is opened", async () => {
  await using s = await scratch();
  const sock = `${s.dir}/x.sock`, trace = `${s.dir}/trace.json`;
  const cases: [string, RegExp][] = [
    [`${s.device},readonly=maybe`, /--device: readonly=maybe: expected on or off/],
    ["--device=e1000,netdev=tap,ifname=t0,mac=zz", /--device: mac=zz: "zz" is not a MAC address/],
    ["--device=e1000,netdev=stream", /--device: e1000: netdev=stream needs path=SOCKET/],
    [`${s.device},serial=${"x".repeat(21)}`, /serial=x+: 21 bytes, at most 20/],
    [`${s.device},bogus=1`, /virtio-blk has no option "bogus"/],
  ];
  for (const [device, re] of cases) {
    const r = await runVfud([`--socket-path=${sock}`, `--trace-protocol=${trace}`, device]);
    assert.equal(r.code, 2, `${device}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.match(r.stderr, HINT);
    assert.ok(!exists(sock), "no socket created");
    assert.ok(!exists(trace), "no trace file created");
  }
});

Deno.test("errors: a second --device is refused", async () => {
  await using s = await scratch();
  const r = await runVfud([`--socket-path=${s.dir}/x.sock`, s.device, s.device]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--device is given twice: one vfud serves exactly one device/);
  assert.match(r.stderr, HINT);
});

Deno.test("errors: --print-capabilities ignores every other option", async () => {
  for (const extra of [["--bogus"], ["--device=nope", "--fd=x"], ["--socket-path=/x", "junk"]]) {
    const r = await runVfud(["--print-capabilities", ...extra]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).name, "vfud");
  }
});

Deno.test("errors: usage errors follow --log-format=json", async () => {
  const r = await runVfud([
    "--log-format=json",
    "--socket-path=/x",
    "--device=e1000,netdev=stream",
  ]);
  assert.equal(r.code, 2);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  const rec = JSON.parse(lines[0]);
  assert.equal(rec.level, "ERROR");
  assert.match(rec.message, /^--device: e1000: netdev=stream needs path=SOCKET/);
  assert.match(rec.message, HINT);
});

Deno.test("errors: socket errors name the path, also under /proc (no permission prompt)", async () => {
  await using s = await scratch();
  const missing = await runVfud(["--socket-path=/nonexistent-dir/a.sock", s.device]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /bind \/nonexistent-dir\/a\.sock: No such file or directory/);
  const proc = await runVfud(["--socket-path=/proc/a.sock", s.device]);
  assert.equal(proc.code, 1);
  assert.match(proc.stderr, /bind \/proc\/a\.sock: /);
  assert.doesNotMatch(proc.stderr, /allow-all|Requires|run again/i);
  const long = `${s.dir}/${"x".repeat(120)}.sock`;
  const tooLong = await runVfud([`--socket-path=${long}`, s.device]);
  assert.equal(tooLong.code, 1);
  assert.ok(tooLong.stderr.includes(`${long}: socket path too long`), tooLong.stderr);
});

Deno.test("errors: files that cannot be opened are named", async () => {
  await using s = await scratch();
  const sock = `${s.dir}/x.sock`;
  const trace = await runVfud([
    `--socket-path=${sock}`,
    s.device,
    "--trace-protocol=/nonexistent-dir/t.json",
  ]);
  assert.equal(trace.code, 1);
  assert.match(trace.stderr, /--trace-protocol: open \/nonexistent-dir\/t\.json: No such file/);
  const stream = await runVfud([
    `--socket-path=${sock}`,
    "--device=e1000,netdev=stream,path=/nonexistent-dir/n.sock",
  ]);
  assert.equal(stream.code, 1);
  assert.match(stream.stderr, /bind \/nonexistent-dir\/n\.sock: No such file/);
  assert.ok(!exists(sock), "the socket is removed again");
});

Deno.test("errors: an image vfud's user may not open names the file, its owner and vfud's user", async () => {
  await using s = await scratch();
  Deno.chmodSync(s.image, 0o600); // root's, and only root's
  Deno.chmodSync(s.dir, 0o755);
  const out = await runVfudAsNobody(s.dir, [`--socket-path=${s.dir}/x.sock`, s.device]);
  const stderr = out.stderr;
  assert.equal(out.code, 1, stderr);
  assert.ok(
    stderr.includes(
      `open ${s.image}: Permission denied (errno 13): vfud runs as uid 65534(nobody) gid 65534`,
    ),
    stderr,
  );
  assert.ok(stderr.includes(`${s.image} is owned by 0(root):0(root), mode 0600`), stderr);
});

Deno.test("errors: a full disk behind stderr stops nothing, and the socket is removed at exit", async () => {
  await using s = await scratch();
  const sock = `${s.dir}/x.sock`;
  const child = new Deno.Command("sh", {
    args: ["-c", 'exec "$@" 2>/dev/full', "sh", ...VFUD, `--socket-path=${sock}`, s.device],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitFor("vfud listening", () => isListening(sock) || undefined, 30_000);
    await new Promise((r) => setTimeout(r, 300)); // its first log lines met the full disk
    assert.ok(isListening(sock), "still serving");
    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0);
    assert.ok(!exists(sock), "socket file removed");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
  }
});
