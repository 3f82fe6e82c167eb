/**
 * vfud under a real systemd: a Debian trixie container (tests/e2e/setup-systemd.sh) booted with
 * systemd-nspawn, systemd as its PID 1. Inside, tests/e2e/systemd/in-container.sh installs the
 * vfud package (tools/deb.sh) and runs vfud@.socket/vfud@.service as the README tells an
 * administrator to: the socket starts the service on the first client (`vfud probe`), the service
 * runs as the user vfud, tells READY/STATUS, stops with exit 0, and logs natively to the journal
 * (priorities: `journalctl -p err`; fields VFUD_DEVICE, VFUD_SOCKET, VFUD_SESSION). A second
 * instance whose image root made after the first start fails with an error naming the file and
 * its owner, and serves once the image is handed to vfud.
 *
 * The container is never changed: --volatile=overlay keeps every write in a tmpfs.
 */
import assert from "node:assert/strict";
import { E2E_HERE, REPO_ROOT, workDir } from "./lib.ts";

const td = new TextDecoder();
const SYSTEMD_DIR = Deno.env.get("VFUD_SYSTEMD_DIR") ?? "/var/tmp/vfud-systemd";

async function sh(args: string[], timeoutS: number, env: Record<string, string> = {}) {
  const out = await new Deno.Command(args[0], {
    args: args.slice(1),
    cwd: REPO_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutS * 1000),
  }).output();
  return { code: out.code, text: (td.decode(out.stdout) + td.decode(out.stderr)).trim() };
}

function journal(path: string): Record<string, string>[] {
  return Deno.readTextFileSync(path).split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

Deno.test("systemd: vfud@.socket and vfud@.service under systemd as PID 1 (nspawn), journal, exit", async () => {
  const setup = await sh(["bash", `${E2E_HERE}setup-systemd.sh`], 2400);
  assert.equal(setup.code, 0, `tests/e2e/setup-systemd.sh failed:\n${setup.text}`);
  const wd = await workDir("systemd");
  let ok = false;
  try {
    const share = `${wd.path}/share`, results = `${wd.path}/results`;
    Deno.mkdirSync(share);
    Deno.mkdirSync(results);
    const deb = await sh(["bash", "tools/deb.sh"], 300, {
      VFUD_DEB_OUT: `${share}/vfud.deb`,
      VFUD_DEB_COMPRESSION: "gzip",
      VFUD_DEB_LEVEL: "1",
    });
    assert.equal(deb.code, 0, deb.text);
    for (const f of ["in-container.sh", "vfud-e2e.service"]) {
      Deno.copyFileSync(`${E2E_HERE}systemd/${f}`, `${share}/${f}`);
    }
    Deno.chmodSync(`${share}/in-container.sh`, 0o755);

    const t0 = performance.now();
    const boot = await sh([
      "systemd-nspawn",
      "--quiet",
      `--directory=${SYSTEMD_DIR}/root`,
      "--boot",
      "--register=no", // no systemd-machined on the host (systemd is not its PID 1)
      "--keep-unit",
      "--volatile=overlay",
      `--bind-ro=${share}:/vfud-e2e`,
      `--bind-ro=${share}/vfud-e2e.service:/etc/systemd/system/vfud-e2e.service`,
      `--bind=${results}:/results`,
      "--pipe",
      "systemd.wants=vfud-e2e.service",
    ], 600);
    Deno.writeTextFileSync(`${wd.path}/console.log`, boot.text);
    const bootS = (performance.now() - t0) / 1000;
    const steps = Object.fromEntries(
      Deno.readTextFileSync(`${results}/steps.txt`).split("\n").filter(Boolean).map((l) => {
        const eq = l.indexOf("=");
        return [l.slice(0, eq), l.slice(eq + 1)];
      }),
    );
    const ctx = `\nsteps: ${JSON.stringify(steps, null, 1)}\nwork dir: ${wd.path}`;
    assert.equal(steps.done, "yes", `the in-container script did not finish${ctx}`);
    assert.equal(steps.pid1, "systemd", ctx);
    assert.match(steps.systemd, /^systemd \d+/);

    // The package: installed with its dependencies satisfied, the user made by postinst.
    assert.equal(steps.dpkg_rc, "0", Deno.readTextFileSync(`${results}/dpkg.txt`));
    assert.match(steps.vfud_user, /^vfud:x:\d+:\d+:[^:]*:\/var\/lib\/vfud:/);
    assert.match(steps.vfud_version, /^vfud \d+\.\d+\.\d+/);
    assert.deepEqual([steps.man, steps.completion, steps.descriptor], ["yes", "yes", "yes"]);

    // Socket activation: the socket listens (root, 0600), the service starts on the first client.
    assert.equal(steps.socket_active, "active", ctx);
    assert.equal(steps.socket_file, "socket root:root 600");
    assert.equal(steps.service_before, "inactive");
    assert.equal(steps.probe_rc, "0", Deno.readTextFileSync(`${results}/probe.txt`));
    const probe = Deno.readTextFileSync(`${results}/probe.txt`);
    assert.match(probe, /virtio-blk: capacity 131072 sectors \(64 MiB\)/);
    assert.equal(steps.service_after, "active", ctx);
    assert.equal(steps.main_user, "vfud");
    assert.match(
      steps.status_text,
      /^serving virtio-blk on socket-activated listening fd 3 \(\/run\/vfud\/disk0\.sock\) \(\/var\/lib\/vfud\/disk0\.img: 64 MiB \(67108864 bytes\), read-write, serial nspawn-disk0\); /,
    );

    // systemctl stop: SIGTERM, exit 0, the socket stays for the next client.
    assert.equal(steps.stop_rc, "0");
    assert.equal(steps.exec_main_status, "0");
    assert.equal(steps.result, "success");
    assert.equal(steps.service_stopped, "inactive");
    assert.equal(steps.socket_still, "active");

    // The journal: native entries with priorities and vfud's fields.
    const j = journal(`${results}/journal-disk0.json`).filter((e) =>
      e.SYSLOG_IDENTIFIER === "vfud"
    );
    assert.ok(j.length >= 5, `vfud journal entries: ${j.length}${ctx}`);
    for (const e of j) {
      assert.equal(e._TRANSPORT, "journal", `a native entry: ${JSON.stringify(e)}`);
      assert.equal(e.VFUD_DEVICE, "virtio-blk");
      assert.equal(e.VFUD_SOCKET, "/run/vfud/disk0.sock");
    }
    const serving = j.find((e) => /^serving virtio-blk on /.test(e.MESSAGE));
    assert.equal(serving?.PRIORITY, "6");
    const connected = j.find((e) => /client connected/.test(e.MESSAGE));
    assert.equal(connected?.VFUD_SESSION, "1");
    assert.ok(j.some((e) => e.PRIORITY === "7" && /VERSION id \d+/.test(e.MESSAGE)), "trace");
    assert.ok(j.some((e) => /^stopped$/.test(e.MESSAGE)), "stopped");
    // -p err: nothing, although the journal holds plenty at lower priorities.
    assert.equal(Deno.readTextFileSync(`${results}/journal-disk0-err.txt`).trim(), "");

    // disk1: a root-owned image fails the service with a message that says why; -p err has it.
    assert.equal(steps.probe_disk1_rc, "1");
    assert.match(steps.disk1_result, /^(exit-code|start-limit-hit)$/, ctx);
    assert.equal(steps.disk1_exit, "1");
    const err1 = Deno.readTextFileSync(`${results}/journal-disk1-err.txt`);
    assert.match(
      err1,
      /open \/var\/lib\/vfud\/disk1\.img: Permission denied \(errno 13\): vfud runs as uid \d+\(vfud\) gid \d+\(vfud\); \/var\/lib\/vfud\/disk1\.img is owned by 0\(root\):0\(root\), mode 0644/,
    );
    assert.doesNotMatch(err1, /serving|client connected/);
    const e1 = journal(`${results}/journal-disk1.json`).find((e) =>
      /Permission denied/.test(e.MESSAGE)
    );
    assert.equal(e1?.PRIORITY, "3");
    assert.equal(e1?._TRANSPORT, "journal");
    assert.equal(steps.probe_disk1_fixed_rc, "0", "chown vfud:vfud fixes it");
    console.log(
      `systemd: ${steps.systemd} as PID 1 in nspawn; package, socket activation, probe, stop ` +
        `(exit 0), journal checked in ${bootS.toFixed(1)} s`,
    );
    ok = true;
  } finally {
    await wd.done(ok);
  }
});
