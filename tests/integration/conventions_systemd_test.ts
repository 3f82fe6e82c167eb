/** Packaging: install layout, `systemd-analyze verify` of the units, the compiled executable. */
import assert from "node:assert/strict";
import { type Schema, validate } from "../../tools/json_schema.ts";
import { ROOT } from "./conventions_helpers.ts";

async function run(cmd: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("conventions: install places binary, descriptors and units; systemd-analyze verify accepts them", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "vfud-install-" });
  try {
    const stub = `${tmp}/stub`;
    Deno.writeTextFileSync(stub, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    // Installed for real under a temporary PREFIX, so ExecStart names an existing executable.
    const prefix = `${tmp}/usr`;
    const r = await run(["bash", "tools/install.sh"], { PREFIX: prefix, VFUD_BINARY: stub });
    assert.equal(r.code, 0, r.stderr);
    const units = `${prefix}/lib/systemd/system`;
    const service = Deno.readTextFileSync(`${units}/vfud@.service`);
    assert.match(service, new RegExp(`^ExecStart=${prefix}/bin/vfud --device=`, "m"));
    const desc = JSON.parse(
      Deno.readTextFileSync(`${prefix}/share/vfio-user/50-vfud-virtio-blk.json`),
    );
    assert.equal(desc.binary, `${prefix}/bin/vfud`);
    const schema = JSON.parse(
      Deno.readTextFileSync(`${prefix}/share/doc/vfud/vfio-user.schema.json`),
    ) as Schema;
    assert.deepEqual(validate(schema, desc), []);
    assert.ok(Deno.statSync(`${prefix}/share/doc/vfud/vfud.conf.example`).isFile);

    const v = await run([
      "systemd-analyze",
      "verify",
      `${units}/vfud@.service`,
      `${units}/vfud@.socket`,
    ]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.equal((v.stdout + v.stderr).trim(), "");

    // DESTDIR staging keeps the final paths inside the files.
    const staged = await run(["bash", "tools/install.sh"], {
      PREFIX: "/usr",
      DESTDIR: `${tmp}/pkg`,
      VFUD_BINARY: stub,
    });
    assert.equal(staged.code, 0, staged.stderr);
    assert.match(
      Deno.readTextFileSync(`${tmp}/pkg/usr/lib/systemd/system/vfud@.service`),
      /^ExecStart=\/usr\/bin\/vfud /m,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("conventions: tools/compile.sh builds a single-file vfud that runs", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "vfud-compile-" });
  try {
    const out = `${tmp}/vfud`;
    // "bundle" is what works offline; "auto" tries deno compile first (needs the denort runtime).
    const r = await run(["bash", "tools/compile.sh"], { VFUD_OUT: out, VFUD_BUILD: "bundle" });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const version = await run([out, "--version"]);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^vfud /);
    const caps = await run([out, "--print-capabilities"]);
    assert.equal(caps.code, 0, caps.stderr);
    assert.ok(
      JSON.parse(caps.stdout).devices.some((d: { type: string }) => d.type === "virtio-blk"),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
