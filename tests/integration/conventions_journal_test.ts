/**
 * Logging under journald. vfud runs in a private mount namespace with a tmpfs over /run, so
 * that what it finds at /run/systemd/journal/socket is up to the test: nothing (every record
 * then goes to stderr in journald's stream format), or the test's own datagram socket (native
 * entries with structured fields). JOURNAL_STREAM is set to stderr's device:inode, as systemd
 * does for a service whose stderr it connected to the journal.
 */
import assert from "node:assert/strict";
import { VfioUserClient } from "../../client/mod.ts";
import { bindDatagram, recvDatagram } from "../../sys/socket.ts";
import { closeFd } from "../../sys/ffi.ts";
import { scratch, sleep, startVfud, VFUD, waitFor, waitForSocket } from "./conventions_helpers.ts";

/** A wrapper: private /run (with `journalDir` bound at /run/systemd/journal), JOURNAL_STREAM. */
function underJournal(journalDir?: string): string[] {
  const bind = journalDir
    ? `mkdir -p /run/systemd/journal && mount --bind '${journalDir}' /run/systemd/journal && `
    : "";
  return [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    `mount -t tmpfs tmpfs /run && ${bind}` +
    'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"',
    "sh",
  ];
}

/** Parses native journal datagrams (KEY=VALUE lines, or KEY\n + le64 length + value). */
function parseEntry(b: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const d = new TextDecoder();
  let i = 0;
  while (i < b.length) {
    const nl = b.indexOf(0x0a, i);
    const line = d.decode(b.subarray(i, nl));
    const eq = line.indexOf("=");
    if (eq >= 0) {
      out.set(line.slice(0, eq), line.slice(eq + 1));
      i = nl + 1;
    } else {
      const len = Number(new DataView(b.buffer, b.byteOffset + nl + 1, 8).getBigUint64(0, true));
      out.set(line, d.decode(b.subarray(nl + 9, nl + 9 + len)));
      i = nl + 9 + len + 1;
    }
  }
  return out;
}

Deno.test("journal: without a journal socket, stderr lines carry <N> and no timestamp", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, s.device], { wrapper: underJournal() });
  await waitForSocket(v, path);
  {
    await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
    await c.version();
  }
  await waitFor("the session's end", () => /client disconnected/.test(v.output()) || undefined);
  assert.equal((await v.signal("SIGTERM")).code, 0);
  const lines = v.output().trimEnd().split("\n");
  for (const l of lines) {
    assert.match(l, /^<[0-7]>/, l);
    assert.doesNotMatch(l, /\d\d:\d\d:\d\d/, `no timestamp: ${l}`);
  }
  assert.ok(lines.some((l) => /^<6>serving virtio-blk on /.test(l)), v.output());
  assert.ok(lines.some((l) => /^<6>session-1: client connected/.test(l)), v.output());
});

Deno.test("journal: a usage error under journald is one <3> line", async () => {
  await using s = await scratch();
  const out = await new Deno.Command(underJournal()[0], {
    args: [
      ...underJournal().slice(1),
      ...VFUD,
      `--socket-path=${s.dir}/x.sock`,
      `${s.device},readonly=maybe`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.equal(
    new TextDecoder().decode(out.stderr),
    "<3>--device: readonly=maybe: expected on or off (Try 'vfud --help' for more information.)\n",
  );
});

Deno.test("journal: native entries with priority and structured fields", async () => {
  await using s = await scratch();
  const jdir = `${s.dir}/journal`;
  Deno.mkdirSync(jdir);
  const jfd = bindDatagram(`${jdir}/socket`);
  const entries: Map<string, string>[] = [];
  const buf = new Uint8Array(1 << 16);
  const drain = () => {
    for (let n; (n = recvDatagram(jfd, buf)) >= 0;) entries.push(parseEntry(buf.slice(0, n)));
  };
  try {
    const path = `${s.dir}/vfud.sock`;
    await using v = startVfud([`--socket-path=${path}`, s.device, "--log-level=trace"], {
      wrapper: underJournal(jdir),
    });
    await waitForSocket(v, path);
    {
      await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
      await c.version();
    }
    await waitFor("the session's end in the journal", () => {
      drain();
      return entries.some((e) => /client disconnected/.test(e.get("MESSAGE") ?? "")) || undefined;
    });
    assert.equal((await v.signal("SIGTERM")).code, 0);
    await sleep(50);
    drain();
    assert.equal(v.output(), "", "everything went to the journal socket");
    const serving = entries.find((e) => /^serving virtio-blk on /.test(e.get("MESSAGE")!));
    assert.ok(serving, JSON.stringify(entries.map((e) => e.get("MESSAGE"))));
    assert.equal(serving.get("PRIORITY"), "6");
    assert.equal(serving.get("SYSLOG_IDENTIFIER"), "vfud");
    assert.equal(serving.get("VFUD_DEVICE"), "virtio-blk");
    assert.equal(serving.get("VFUD_SOCKET"), path);
    const connected = entries.find((e) => /client connected/.test(e.get("MESSAGE")!))!;
    assert.equal(connected.get("VFUD_SESSION"), "1");
    assert.equal(connected.get("VFUD_LOGGER"), "vfud.session-1");
    assert.ok(
      entries.some((e) =>
        e.get("PRIORITY") === "7" && /^session-1: VERSION id \d+ /.test(e.get("MESSAGE")!)
      ),
      "trace entries at priority 7",
    );
  } finally {
    closeFd(jfd);
  }

  // A runtime error: priority 3, naming the file.
  const missing = `${s.dir}/missing.img`;
  const sock = `${jdir}/socket`;
  Deno.removeSync(sock);
  const again = bindDatagram(sock);
  try {
    const out = await new Deno.Command(underJournal(jdir)[0], {
      args: [
        ...underJournal(jdir).slice(1),
        ...VFUD,
        `--socket-path=${s.dir}/y.sock`,
        `--device=virtio-blk,file=${missing}`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 1);
    const n = recvDatagram(again, buf);
    assert.ok(n > 0);
    const e = parseEntry(buf.slice(0, n));
    assert.equal(e.get("PRIORITY"), "3");
    assert.equal(e.get("MESSAGE"), `open ${missing}: No such file or directory (errno 2)`);
  } finally {
    closeFd(again);
  }
});
