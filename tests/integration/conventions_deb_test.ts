/**
 * The Debian package (tools/deb.sh): its fields, its files, what it depends on, that the vfud
 * it holds runs (extracted with dpkg -x: serve a disk, probe it), and a real dpkg install into
 * a throwaway root (maintainer scripts run chrootless: postinst creates the user vfud).
 */
import assert from "node:assert/strict";
import { isListening, run, waitFor } from "./conventions_helpers.ts";

Deno.test("deb: tools/deb.sh builds a package that installs and runs on its own", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "vfud-deb-" });
  try {
    const deb = `${tmp}/vfud.deb`;
    const b = await run(["bash", "tools/deb.sh"], {
      env: { VFUD_DEB_OUT: deb, VFUD_DEB_COMPRESSION: "gzip", VFUD_DEB_LEVEL: "1" },
      deadlineMs: 300_000, // builds the package
    });
    assert.equal(b.code, 0, b.stdout + b.stderr);

    const field = async (f: string) => (await run(["dpkg-deb", "-f", deb, f])).stdout.trim();
    assert.equal(await field("Package"), "vfud");
    assert.equal(await field("Architecture"), "amd64");
    assert.equal(await field("Depends"), "libc6 (>= 2.27), libgcc-s1 | libgcc1");
    const files = (await run(["dpkg-deb", "-c", deb])).stdout;
    for (
      const f of [
        "./usr/bin/vfud",
        "./usr/lib/vfud/deno",
        "./usr/lib/vfud/vfud.js",
        "./usr/lib/systemd/system/vfud@.service",
        "./usr/lib/systemd/system/vfud@.socket",
        "./usr/lib/sysusers.d/vfud.conf",
        "./usr/share/vfio-user/50-vfud-virtio-blk.json",
        "./usr/share/vfio-user/50-vfud-e1000.json",
        "./usr/share/man/man1/vfud.1.gz",
        "./usr/share/bash-completion/completions/vfud",
        "./usr/share/doc/vfud/copyright",
      ]
    ) assert.match(files, new RegExp(` ${f.replaceAll(".", "\\.")}\n`), f);

    // Extracted: the runtime's libraries all come from the packages it depends on.
    const x = `${tmp}/x`;
    assert.equal((await run(["dpkg-deb", "-x", deb, x])).code, 0);
    const ldd = await run(["ldd", `${x}/usr/lib/vfud/deno`]);
    assert.equal(ldd.code, 0, ldd.stderr);
    assert.doesNotMatch(ldd.stdout, /not found/);
    const libs = [...ldd.stdout.matchAll(/=> (\/\S+)/g)].map((m) => m[1]);
    assert.ok(libs.length >= 3, ldd.stdout);
    for (const lib of libs) {
      const owner = await run(["dpkg", "-S", await Deno.realPath(lib)]);
      const owner2 = owner.code === 0 ? owner : await run(["dpkg", "-S", lib]);
      assert.match(owner2.stdout, /^(libc6|libgcc-s1)(:\w+)?: /, `${lib}: ${owner2.stdout}`);
    }

    // ... and vfud runs from it: serve a disk, probe it, stop.
    const vfud = `${x}/usr/bin/vfud`;
    const v = await run([vfud, "--version"]);
    assert.match(v.stdout, /^vfud \d+\.\d+\.\d+/);
    const image = `${tmp}/disk.img`;
    Deno.writeFileSync(image, new Uint8Array(0));
    Deno.truncateSync(image, 2 << 20);
    const sock = `${tmp}/vfud.sock`;
    const server = new Deno.Command(vfud, {
      args: [`--socket-path=${sock}`, `--device=virtio-blk,file=${image}`],
      env: { HOME: "/nonexistent" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      await waitFor("the packaged vfud listening", () => isListening(sock) || undefined);
      const p = await run([vfud, "probe", sock]);
      assert.equal(p.code, 0, p.stderr);
      assert.match(p.stdout, /virtio-blk: capacity 4096 sectors \(2 MiB\)/);
      server.kill("SIGTERM");
      assert.equal((await server.status).code, 0);
    } finally {
      try {
        server.kill("SIGKILL");
      } catch { /* exited */ }
      await server.stderr.cancel();
      await server.status;
    }
    const man = await run([
      "sh",
      "-c",
      `zcat ${x}/usr/share/man/man1/vfud.1.gz | groff -man -Tutf8 -ww -z`,
    ]);
    assert.equal(man.code, 0);
    assert.equal(man.stderr, "");

    // A real install into a throwaway root: dpkg runs postinst (chrootless), which makes vfud.
    const root = `${tmp}/root`;
    for (const d of ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"]) {
      Deno.mkdirSync(`${root}/${d}`, { recursive: true });
    }
    Deno.writeTextFileSync(`${root}/var/lib/dpkg/status`, "");
    const dpkg = ["dpkg", `--root=${root}`, "--force-script-chrootless", "--log=/dev/null"];
    const i = await run([...dpkg, "--force-depends", "-i", deb]);
    assert.equal(i.code, 0, i.stdout + i.stderr);
    assert.match(
      Deno.readTextFileSync(`${root}/etc/passwd`),
      /^vfud:x:\d+:\d+:[^:]*:\/var\/lib\/vfud:/m,
    );
    assert.match(
      (await run(["dpkg", `--root=${root}`, "-s", "vfud"])).stdout,
      /Status: install ok installed/,
    );
    assert.equal((await run([`${root}/usr/bin/vfud`, "--version"])).code, 0);
    const r = await run([...dpkg, "-r", "vfud"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.throws(() => Deno.statSync(`${root}/usr/bin/vfud`));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
