import assert from "node:assert/strict";
import {
  checkOptionValue,
  escapeOptionValue,
  parseOptionList,
  parseSizeText,
  splitOptionList,
} from "./options.ts";
import { DEVICE_TYPES, parseDeviceArg } from "./mod.ts";

Deno.test("device options: QEMU's ,, escape", () => {
  assert.deepEqual(splitOptionList("virtio-blk,file=/tmp/a,,b.img,serial=x"), [
    "virtio-blk",
    "file=/tmp/a,b.img",
    "serial=x",
  ]);
  assert.deepEqual(splitOptionList("a,,,,b"), ["a,,b"]);
  assert.deepEqual(splitOptionList("t,k=v,,"), ["t", "k=v,"]);
  assert.deepEqual(splitOptionList("t,,,k=v"), ["t,", "k=v"]);
  for (const v of ["/a,b", ",", "x,,y", ""]) {
    assert.deepEqual(splitOptionList(`t,k=${escapeOptionValue(v)}`), ["t", `k=${v}`]);
  }
  const { options } = parseDeviceArg("virtio-blk,file=/images/a,,b.img");
  assert.equal(options.get("file"), "/images/a,b.img");
});

Deno.test("device options: values are checked by kind, names and repeats refused", () => {
  const specs = {
    on: { help: "", value: "bool" as const },
    sz: { help: "", value: "size" as const },
    n: { help: "", value: "uint" as const },
    mac: { help: "", value: "mac" as const },
    p: { help: "", value: "path" as const },
    w: { help: "", value: ["a", "b"] as const },
    req: { help: "", required: true },
  };
  const ok = parseOptionList(
    "t",
    ["req=1", "on=yes", "sz=4K", "n=7", "mac=02:00:00:00:00:01"],
    specs,
  );
  assert.equal(ok.get("sz"), "4K");
  const bad = (items: string[], re: RegExp) =>
    assert.throws(() => parseOptionList("t", ["req=1", ...items], specs), re);
  bad(["on=maybe"], /on=maybe: expected on or off/);
  bad(["sz=12Q"], /sz=12Q: not a size/);
  bad(["n=-1"], /n=-1: not a number/);
  bad(["mac=zz"], /mac=zz: .*not a MAC/);
  bad(["p="], /p= needs a file name/);
  bad(["w=c"], /w=c: expected a or b/);
  bad(["on=on", "on=off"], /on= is given twice/);
  bad(["bogus=1"], /t has no option "bogus" \(its options: on, sz/);
  bad(["novalue"], /"novalue" is not key=value/);
  bad([""], /empty option/);
  assert.throws(() => parseOptionList("t", [], specs), /t needs req=/);
  assert.throws(() =>
    checkOptionValue("w", "a", {
      help: "",
      value: ["a"],
      check() {
        throw new Error("custom");
      },
    }), /custom/);
});

Deno.test("device options: sizes", () => {
  assert.equal(parseSizeText("4096"), 4096);
  assert.equal(parseSizeText("64k"), 65536);
  assert.equal(parseSizeText("2T"), 2 ** 41);
  assert.ok(Number.isNaN(parseSizeText("1.5G")));
  assert.ok(Number.isNaN(parseSizeText("99999999999T")));
});

Deno.test("device options: each device type's values are checked before it is created", () => {
  const bad = (arg: string, re: RegExp) => assert.throws(() => parseDeviceArg(arg), re);
  bad("virtio-blk,file=/x,readonly=maybe", /readonly=maybe: expected on or off/);
  bad("virtio-blk,file=/x,serial=123456789012345678901", /21 bytes, at most 20/);
  bad("virtio-blk,file=", /file= needs a file name/);
  bad("virtio-blk", /virtio-blk needs file=/);
  bad("e1000,netdev=stream", /netdev=stream needs path=/);
  bad("e1000,netdev=tap,ifname=t0,mac=zz", /mac=zz/);
  bad("e1000,netdev=tap,ifname=much-too-long-name0", /not an interface name/);
  bad("e1000,netdev=stream,path=/s,server=perhaps", /server=perhaps: expected on or off/);
  bad("e1000,netdev=udp", /netdev=udp: expected tap or stream/);
  bad("nvme,file=/x", /unknown device type "nvme" \(known: virtio-blk, e1000\)/);
});

Deno.test("device options: every option of every device type says how its value is checked", () => {
  // So that `--device` mistakes are usage errors found before anything opens (exit 2), never
  // runtime errors of a factory: each option has a value kind or a check of its own.
  for (const t of DEVICE_TYPES.values()) {
    for (const [k, spec] of Object.entries(t.options)) {
      assert.ok(
        spec.value !== undefined || spec.check !== undefined,
        `${t.name} option ${k}= has neither a value kind nor a check`,
      );
    }
  }
});
