import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import {
  encodeJournalEntry,
  fieldName,
  formatJournalStream,
  formatJson,
  formatText,
  journalFields,
  JournalSocket,
  renderMessage,
  stderrIsJournal,
  StderrWriter,
} from "./log.ts";
import { fstatFd } from "./files.ts";
import { bindDatagram, recvDatagram } from "./socket.ts";
import { closeFd } from "./ffi.ts";

function record(over: Partial<LogRecord> = {}): LogRecord {
  return {
    category: ["vfud", "session-3"],
    level: "error",
    message: ["open ", "/nope", ": ", new Error("No such file"), ""],
    rawMessage: "open {path}: {error}",
    timestamp: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
    properties: { path: "/nope", errno: 2, session: 3 },
    ...over,
  };
}

Deno.test("log: values render bare (no quotes around strings)", () => {
  assert.equal(renderMessage(record()), "open /nope: No such file");
  assert.equal(renderMessage({ message: ["n=", 5n, " o=", { a: 1n }, ""] }), 'n=5 o={"a":"1"}');
});

Deno.test("log: text lines carry time, level and category", () => {
  assert.match(
    formatText(record()),
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d\d:\d\d \[ERR\] vfud·session-3: open \/nope: No such file\n$/,
  );
});

Deno.test("log: JSON lines keep the message unquoted and the properties", () => {
  const line = formatJson(record(), { device: "virtio-blk" });
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  const o = JSON.parse(line);
  assert.equal(o.message, "open /nope: No such file");
  assert.equal(o.level, "ERROR");
  assert.equal(o.logger, "vfud.session-3");
  assert.equal(o["@timestamp"], "2026-01-02T03:04:05.006Z");
  assert.deepEqual(o.properties, { device: "virtio-blk", path: "/nope", errno: 2, session: 3 });
  assert.equal(JSON.parse(formatJson(record({ level: "warning" }))).level, "WARN");
});

Deno.test("log: journal stream lines: <N> priority prefix, no timestamp, one per line", () => {
  assert.equal(formatJournalStream(record()), "<3>session-3: open /nope: No such file\n");
  assert.equal(
    formatJournalStream(record({ category: ["vfud"], level: "info", message: ["a\nb"] })),
    "<6>a\n<6>b\n",
  );
  const prio = (level: LogRecord["level"]) =>
    formatJournalStream(record({ level, category: ["vfud"], message: ["x"] }));
  assert.deepEqual(
    (["fatal", "error", "warning", "info", "debug", "trace"] as const).map(prio),
    ["<2>x\n", "<3>x\n", "<4>x\n", "<6>x\n", "<7>x\n", "<7>x\n"],
  );
});

Deno.test("log: native journal fields and their wire format", () => {
  const fields = new Map(journalFields(record(), { device: "virtio-blk", socket: "/run/a.sock" }));
  assert.equal(fields.get("MESSAGE"), "session-3: open /nope: No such file");
  assert.equal(fields.get("PRIORITY"), "3");
  assert.equal(fields.get("SYSLOG_IDENTIFIER"), "vfud");
  assert.equal(fields.get("VFUD_DEVICE"), "virtio-blk");
  assert.equal(fields.get("VFUD_SOCKET"), "/run/a.sock");
  assert.equal(fields.get("VFUD_SESSION"), "3");
  assert.equal(fields.get("VFUD_PATH"), "/nope");
  assert.equal(fields.get("ERRNO"), "2");
  assert.equal(fieldName("maxDataXfer"), "VFUD_MAX_DATA_XFER");
  assert.equal(fieldName("a-b.c"), "VFUD_A_B_C");

  const bytes = encodeJournalEntry([["A", "x=y"], ["B", "two\nlines"]]);
  const expect = new Uint8Array([
    ...new TextEncoder().encode("A=x=y\nB\n"),
    9,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    ...new TextEncoder().encode("two\nlines\n"),
  ]);
  assert.deepEqual(bytes, expect);
});

Deno.test("log: JournalSocket sends entries as datagrams, and says when nobody listens", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/socket`;
    const fd = bindDatagram(path);
    const j = new JournalSocket(path);
    try {
      assert.equal(j.send(encodeJournalEntry([["MESSAGE", "hi"], ["PRIORITY", "6"]])), true);
      const buf = new Uint8Array(256);
      const n = recvDatagram(fd, buf);
      assert.equal(new TextDecoder().decode(buf.subarray(0, n)), "MESSAGE=hi\nPRIORITY=6\n");
    } finally {
      j.close();
      closeFd(fd);
    }
    const absent = new JournalSocket(`${dir}/none`);
    assert.equal(absent.send(new Uint8Array([65])), false);
    absent.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log: JOURNAL_STREAM must name stderr itself", () => {
  const st = fstatFd(2);
  const env = (v?: string) => ({ get: (k: string) => k === "JOURNAL_STREAM" ? v : undefined });
  assert.equal(stderrIsJournal(env(`${st.dev}:${st.ino}`)), true);
  assert.equal(stderrIsJournal(env(`${st.dev}:${st.ino + 1n}`)), false);
  assert.equal(stderrIsJournal(env("garbage")), false);
  assert.equal(stderrIsJournal(env(undefined)), false);
});

Deno.test("log: a stderr that fails drops lines instead of throwing", async () => {
  let calls = 0;
  const failing = new StderrWriter({
    write() {
      calls++;
      return Promise.reject(new Error("No space left on device"));
    },
  });
  failing.write("a\n");
  failing.write("b\n");
  await failing.flush();
  assert.ok(calls >= 1);
  assert.equal(failing.dropped, 2);

  const got: string[] = [];
  const slow = new StderrWriter({
    async write(p) {
      await new Promise((r) => setTimeout(r, 1));
      const n = Math.min(3, p.length); // short writes are continued
      got.push(new TextDecoder().decode(p.subarray(0, n)));
      return n;
    },
  }, 1);
  slow.write("one\n");
  slow.write("two\n");
  slow.write("three\n"); // over the queue bound while the first write is in flight
  await slow.flush();
  assert.equal(got.join(""), "one\ntwo\n");
  assert.equal(slow.dropped, 1);
});
