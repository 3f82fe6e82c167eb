/** Packaging: install layout, `systemd-analyze verify` of the units, the compiled executable. */
import assert from "node:assert/strict";
import { type Schema, validate } from "../../tools/json_schema.ts";
import { run } from "./conventions_helpers.ts";

Deno.test("conventions: install places binary, descriptors and units; systemd-analyze verify accepts them", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "vfud-install-" });
  try {
    const stub = `${tmp}/stub`;
    Deno.writeTextFileSync(stub, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    // Installed for real under a temporary PREFIX, so ExecStart names an existing executable.
    const prefix = `${tmp}/usr`;
    const r = await run(["bash", "tools/install.sh"], {
      env: { PREFIX: prefix, VFUD_BINARY: stub, VFUD_DESCRIPTOR_DIR: `${tmp}/etc/vfio-user` },
    });
    assert.equal(r.code, 0, r.stderr);
    const units = `${prefix}/lib/systemd/system`;
    const service = Deno.readTextFileSync(`${units}/vfud@.service`);
    assert.match(service, new RegExp(`^ExecStart=${prefix}/bin/vfud --device=`, "m"));
    // A prefix other than /usr: descriptors go where management software looks for the
    // administrator's (the vendor's place is /usr/share/vfio-user, /usr/local/share is not read).
    const desc = JSON.parse(
      Deno.readTextFileSync(`${tmp}/etc/vfio-user/50-vfud-virtio-blk.json`),
    );
    assert.equal(desc.binary, `${prefix}/bin/vfud`);
    const schema = JSON.parse(
      Deno.readTextFileSync(`${prefix}/share/doc/vfud/vfio-user.schema.json`),
    ) as Schema;
    assert.deepEqual(validate(schema, desc), []);
    assert.ok(Deno.statSync(`${prefix}/share/doc/vfud/vfud.conf.example`).isFile);
    assert.match(service, /^User=vfud$/m);
    assert.match(service, /^Group=vfud$/m);
    assert.doesNotMatch(service, /DynamicUser/);
    assert.match(Deno.readTextFileSync(`${prefix}/share/man/man1/vfud.1`), /^\.TH VFUD 1/);
    assert.match(
      Deno.readTextFileSync(`${prefix}/share/bash-completion/completions/vfud`),
      /complete -F _vfud vfud/,
    );
    // The sysusers.d entry makes the user and group the units run as.
    const sysroot = `${tmp}/sysroot`;
    Deno.mkdirSync(`${sysroot}/etc`, { recursive: true });
    const su = await run([
      "systemd-sysusers",
      `--root=${sysroot}`,
      `${prefix}/lib/sysusers.d/vfud.conf`,
    ]);
    assert.equal(su.code, 0, su.stderr);
    assert.match(
      Deno.readTextFileSync(`${sysroot}/etc/passwd`),
      /^vfud:x:\d+:\d+:[^:]*:\/var\/lib\/vfud:/m,
    );
    assert.match(Deno.readTextFileSync(`${sysroot}/etc/group`), /^vfud:x:\d+:/m);

    const v = await run([
      "systemd-analyze",
      "verify",
      `${units}/vfud@.service`,
      `${units}/vfud@.socket`,
    ], { env: { MANPATH: `${prefix}/share/man:` } }); // Documentation=man:vfud(1) must resolve
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.equal((v.stdout + v.stderr).trim(), "");

    // DESTDIR staging keeps the final paths inside the files.
    const staged = await run(["bash", "tools/install.sh"], {
      env: {
        PREFIX: "/usr",
        DESTDIR: `${tmp}/pkg`,
        VFUD_BINARY: stub,
      },
    });
    assert.equal(staged.code, 0, staged.stderr);
    assert.match(
      Deno.readTextFileSync(`${tmp}/pkg/usr/lib/systemd/system/vfud@.service`),
      /^ExecStart=\/usr\/bin\/vfud /m,
    );
    // PREFIX=/usr: the descriptors in the vendor's place the spec names.
    assert.equal(
      JSON.parse(Deno.readTextFileSync(`${tmp}/pkg/usr/share/vfio-user/50-vfud-e1000.json`)).binary,
      "/usr/bin/vfud",
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
    const r = await run(["bash", "tools/compile.sh"], {
      env: { VFUD_OUT: out, VFUD_BUILD: "bundle" },
      deadlineMs: 300_000, // bundles the program
    });
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
