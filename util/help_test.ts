import assert from "node:assert/strict";
import { manPage, roffEscape, usage, wrap } from "./help.ts";
import { OPTIONS } from "./cli.ts";
import { DEVICE_TYPES } from "../devices/mod.ts";

Deno.test("help: --help lists every option, device type and device option", () => {
  const h = usage();
  for (const o of OPTIONS) assert.ok(h.includes(`--${o.name}`), o.name);
  for (const t of DEVICE_TYPES.values()) {
    assert.ok(h.includes(`  ${t.name}\n`), t.name);
    for (const k of Object.keys(t.options)) assert.ok(h.includes(`    ${k}=`), `${t.name} ${k}`);
  }
  assert.match(h, /readonly=on\|off/);
  assert.match(h, /netdev=tap\|stream/);
  for (const line of h.split("\n")) assert.ok(line.length <= 100, line);
});

Deno.test("help: the man page comes from the same table", () => {
  const m = manPage();
  assert.match(m, /^\.TH VFUD 1 /);
  for (const section of ["NAME", "SYNOPSIS", "OPTIONS", "DEVICES", "EXIT STATUS", "FILES"]) {
    assert.match(m, new RegExp(`^\\.SH ${section}$`, "m"));
  }
  for (const o of OPTIONS) {
    assert.ok(m.includes(`\\fB\\-\\-${o.name.replaceAll("-", "\\-")}\\fR`), o.name);
  }
  for (const t of DEVICE_TYPES.values()) assert.ok(m.includes(`.SS ${roffEscape(t.name)}`), t.name);
  // No line may start with a dot or quote by accident (roff would take it as a request).
  for (const line of m.split("\n")) {
    if (/^[.']/.test(line)) assert.match(line, /^\.(TH|SH|SS|TP|PP|nf|fi|nh|ad)\b/, line);
  }
});

Deno.test("help: groff renders the man page without warnings", async () => {
  const child = new Deno.Command("groff", {
    args: ["-man", "-Tutf8", "-ww", "-z"],
    stdin: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(manPage()));
  await w.close();
  const out = await child.output();
  assert.equal(out.code, 0);
  assert.equal(new TextDecoder().decode(out.stderr), "");
});

Deno.test("help: helpers", () => {
  assert.deepEqual(wrap("aa bb cc", 2, 7), ["  aa bb", "  cc"]);
  assert.equal(roffEscape(".x-y\\z"), "\\&.x\\-y\\ez");
});
