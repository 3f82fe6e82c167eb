import assert from "node:assert/strict";
import { describeMessage, jsonSafe, ProtocolTrace } from "./trace.ts";
import { Command, Flags } from "../protocol/header.ts";
import { RegionRead, RegionWrite } from "../protocol/region_rw.ts";
import { Version } from "../protocol/version.ts";
import { Errno } from "../sys/errno.ts";

const hdr = (cmd: number, flags: number, payload: number, error = 0) => ({
  id: 7,
  cmd,
  flags,
  size: 16 + payload,
  error,
});

Deno.test("trace: a command is decoded; small data shows its hex", () => {
  const p = RegionWrite.encodeRequest({
    offset: 0x10n,
    region: 7,
    data: new Uint8Array([1, 2, 3, 4]),
  });
  const d = describeMessage(hdr(Command.REGION_WRITE, Flags.TYPE_COMMAND, p.length), p, 0);
  assert.equal(d.cmd, "REGION_WRITE");
  assert.equal(d.type, "command");
  assert.deepEqual(d.fields, { offset: "0x10", region: 7, data: { bytes: 4, hex: "01020304" } });
});

Deno.test("trace: bulk data is reduced to its length", () => {
  const data = new Uint8Array(4096).fill(0xab);
  const p = RegionRead.encodeReply({ offset: 0n, region: 1, data });
  const d = describeMessage(hdr(Command.REGION_READ, Flags.TYPE_REPLY, p.length), p);
  const f = d.fields as Record<string, unknown>;
  assert.deepEqual(f.data, { bytes: 4096 });
  assert.ok(!JSON.stringify(d).includes("abab"));
});

Deno.test("trace: error replies, unknown commands, undecodable payloads", () => {
  const e = describeMessage(
    hdr(Command.DMA_MAP, Flags.TYPE_REPLY | Flags.ERROR, 0, Errno.EINVAL),
    new Uint8Array(0),
  );
  assert.equal(e.errno, Errno.EINVAL);
  assert.equal(e.error, "EINVAL");
  const u = describeMessage(hdr(99, 0, 0), new Uint8Array(0));
  assert.equal(u.cmd, "CMD_99");
  const bad = describeMessage(hdr(Command.DEVICE_GET_INFO, 0, 3), new Uint8Array(3));
  assert.equal(typeof bad.decodeError, "string");
});

Deno.test("trace: lines are JSON with direction, connection and header fields", () => {
  const lines: string[] = [];
  const dec = new TextDecoder();
  const trace = new ProtocolTrace({
    writeSync: (p: Uint8Array) => {
      lines.push(dec.decode(p));
      return p.length;
    },
  });
  const p = Version.encode({ major: 0, minor: 0, caps: { maxMsgFds: 8, pgsizes: 4096n } });
  trace.record("recv", 5, hdr(Command.VERSION, 0, p.length), [p.subarray(0, 3), p.subarray(3)], 0);
  const line = JSON.parse(lines.join(""));
  assert.equal(line.dir, "recv");
  assert.equal(line.conn, 5);
  assert.equal(line.cmd, "VERSION");
  assert.equal(line.fields.caps.pgsizes, "0x1000");
  assert.ok(!Number.isNaN(Date.parse(line.ts)));
});

Deno.test("trace: jsonSafe", () => {
  assert.deepEqual(jsonSafe({ a: 1n << 64n, b: [2n], c: undefined, d: null }), {
    a: "0x10000000000000000",
    b: ["0x2"],
    d: null,
  });
});
