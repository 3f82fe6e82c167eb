import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import { Command, Flags } from "./header.ts";
import { fromHex } from "./hex.ts";
import { encodeReply, splitMessage } from "./message.ts";
import { negotiate, type ServerCaps } from "./negotiate.ts";
import { concatBytes } from "./wire.ts";
import { assertErrno } from "./testutil.ts";
import { Version } from "./version.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

/** major 0, minor 0, then `json` and its NUL. */
const versionPayload = (json: string) =>
  concatBytes([fromHex("0000 0000"), utf8(json), fromHex("00")]);

// What QEMU 11.1 really sends (client trace: "wrote 0xd6"): qobject_to_json puts a space after
// every ':' and ','. The same caps without spaces would make a 199-byte message.
const QEMU_JSON = '{"capabilities": {"pgsizes": 4096, "max_msg_fds": 16, "max_dma_maps": 65535, ' +
  '"max_data_xfer_size": 1048576, "migration": {"max_bitmap_size": 268435456, "pgsize": 4096}, ' +
  '"write_multiple": true}}';
const QEMU_VERSION = concatBytes([
  fromHex("0000 0100 d6000000 00000000 00000000"), // id 0, VERSION, size 214, command
  versionPayload(QEMU_JSON),
]);

const OURS: ServerCaps = {
  maxMsgFds: 64,
  maxDataXferSize: 1048576,
  maxDmaMaps: 65535,
  pgsizes: 4096n,
  writeMultiple: true,
  twinSocket: true,
  migration: { pgsize: 4096, maxBitmapSize: 268435456 },
};

Deno.test("VERSION: QEMU's real 214-byte request decodes", () => {
  assert.equal(QEMU_VERSION.length, 214);
  const { header, payload } = splitMessage(QEMU_VERSION);
  assert.equal(header.cmd, Command.VERSION);
  assert.deepEqual(Version.decodeRequest(payload), {
    major: 0,
    minor: 0,
    caps: {
      maxMsgFds: 16,
      maxDataXferSize: 1048576,
      maxDmaMaps: 65535,
      pgsizes: 4096n,
      writeMultiple: true,
      migration: { pgsize: 4096, maxBitmapSize: 268435456 },
    },
  });
});

// Our compact encoding of the capabilities QEMU proposes, in our key order.
const OUR_JSON = '{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,' +
  '"max_dma_maps":65535,"migration":{"pgsize":4096,"max_bitmap_size":268435456},' +
  '"write_multiple":true}}';

Deno.test("VERSION: negotiated reply to QEMU is the golden reply and fits in 214 bytes", () => {
  const n = negotiate(splitMessage(QEMU_VERSION).payload, OURS);
  assert.deepEqual(n.payload, versionPayload(OUR_JSON));
  assert.deepEqual(n.dropped, []);
  const reply = encodeReply(0, Command.VERSION, n.payload);
  assert.equal(reply.length, 16 + 4 + OUR_JSON.length + 1);
  assert.ok(reply.length <= 214, `reply ${reply.length} > 214`);
  assert.equal(splitMessage(reply).header.flags, Flags.TYPE_REPLY);
  assert.deepEqual(n.session, {
    major: 0,
    minor: 0,
    clientMaxMsgFds: 16,
    serverMaxMsgFds: 16,
    maxDataXferSize: 1048576,
    maxDmaMaps: 65535,
    pgsizes: 4096n,
    writeMultiple: true,
    twinSocket: false,
    migration: { pgsize: 4096, maxBitmapSize: 268435456 },
  });
  // the reply passes what QEMU checks: major 0, minor <= 0, NUL at the end, JSON object
  const back = Version.decodeReply(n.payload);
  assert.equal(back.major, 0);
  assert.equal(back.minor, 0);
  assert.deepEqual(back.caps, n.reply.caps);
});

Deno.test("VERSION: golden compact payload round-trips byte for byte", () => {
  const bytes = versionPayload(OUR_JSON);
  const msg = Version.decode(bytes);
  assert.deepEqual(Version.encode(msg), bytes);
  const noJson = fromHex("0000 0000");
  assert.deepEqual(Version.decode(noJson), { major: 0, minor: 0, caps: null });
  assert.deepEqual(Version.encode({ major: 0, minor: 0, caps: null }), noJson);
  assert.deepEqual(Version.encode({ major: 1, minor: 2, caps: {} }), fromHex("0100 0200 7b7d 00"));
});

Deno.test("VERSION: same request without spaces (199 bytes) still gets a reply <= request", () => {
  const compact = versionPayload(QEMU_JSON.replaceAll(": ", ":").replaceAll(", ", ","));
  assert.equal(16 + compact.length, 199);
  const n = negotiate(compact, OURS);
  assert.ok(n.payload.length <= compact.length);
});

Deno.test("VERSION: values are the intersection of both sides", () => {
  const server: ServerCaps = {
    maxMsgFds: 8,
    maxDataXferSize: 65536,
    maxDmaMaps: 1024,
    pgsizes: 4096n | 2097152n,
    writeMultiple: false,
    twinSocket: false,
  };
  const n = negotiate(splitMessage(QEMU_VERSION).payload, server);
  assert.deepEqual(n.reply.caps, {
    maxMsgFds: 8,
    maxDataXferSize: 65536,
    pgsizes: 4096n,
    maxDmaMaps: 1024,
    writeMultiple: false,
  });
  assert.equal(n.session.maxDataXferSize, 65536);
  assert.equal(n.session.writeMultiple, false);
  assert.equal(n.session.migration, null);
});

Deno.test("VERSION: pgsizes keeps all 64 bits exact", () => {
  const req = versionPayload('{"capabilities":{"pgsizes":18446744073709547520}}');
  assert.equal(Version.decode(req).caps?.pgsizes, 0xffff_ffff_ffff_f000n);
  const n = negotiate(req, { ...OURS, pgsizes: 0x20_1000n });
  assert.equal(n.reply.caps?.pgsizes, 0x20_1000n);
});

Deno.test("VERSION: twin_socket only when both want it; the fd is at index 0", () => {
  const req = versionPayload(
    '{"capabilities":{"write_multiple":true,"twin_socket":{"supported":true}}}',
  );
  const n = negotiate(req, { ...OURS, writeMultiple: false });
  // full reply ({"write_multiple":false,...,"fd_index":0}) is too long: the default goes first
  assert.deepEqual(n.dropped, ["defaults"]);
  assert.deepEqual(n.reply.caps, { twinSocket: { supported: true, fdIndex: 0 } });
  assert.equal(n.session.twinSocket, true);
  assert.ok(n.payload.length <= req.length);
  const off = negotiate(req, { ...OURS, twinSocket: false });
  assert.equal(off.session.twinSocket, false);
  assert.equal(off.reply.caps?.twinSocket, undefined);
});

Deno.test("VERSION: trimming drops optional keys in the documented order", () => {
  const req = versionPayload('{"capabilities":{"twin_socket":{"supported":true}}}');
  const n = negotiate(req, OURS);
  assert.deepEqual(n.dropped, ["twin_socket"]);
  assert.deepEqual(n.payload, versionPayload("{}"));
  assert.equal(n.session.twinSocket, false);

  const mig = versionPayload('{"capabilities":{"migration":{"pgsize":1}}}');
  const m = negotiate(mig, { ...OURS, migration: { pgsize: 65536, maxBitmapSize: 1 } });
  assert.deepEqual(m.dropped, ["migration"]);
  assert.equal(m.session.migration, null);
});

Deno.test("VERSION: no JSON in, no JSON out; empty object in, {} out", () => {
  const n = negotiate(fromHex("0000 0000"), OURS);
  assert.deepEqual(n.payload, fromHex("0000 0000"));
  assert.equal(n.session.clientMaxMsgFds, 1);
  assert.equal(n.session.maxDataXferSize, 1048576);
  assert.equal(n.session.writeMultiple, false);
  assert.deepEqual(negotiate(versionPayload("{}"), OURS).payload, versionPayload("{}"));
  // a higher minor is answered with ours
  assert.equal(Version.decode(negotiate(fromHex("0000 0700"), OURS).payload).minor, 0);
});

Deno.test("VERSION: malformed requests", () => {
  const bad = (json: string) => () => negotiate(versionPayload(json), OURS);
  assertErrno(() => negotiate(fromHex("0100 0000"), OURS), Errno.ENOTSUP, /major 1/);
  assertErrno(() => negotiate(fromHex("0000 00"), OURS), Errno.EINVAL, /3 bytes < 4/);
  assertErrno(
    () => negotiate(concatBytes([fromHex("0000 0000"), utf8("{}")]), OURS),
    Errno.EINVAL,
    /NUL-terminated/,
  );
  assertErrno(() => negotiate(fromHex("0000 0000 7b 00 7d 00"), OURS), Errno.EINVAL, /NUL inside/);
  assertErrno(() => negotiate(fromHex("0000 0000 ff 00"), OURS), Errno.EINVAL, /UTF-8/);
  assertErrno(() => negotiate(fromHex("0000 0000 00"), OURS), Errno.EINVAL, /invalid JSON/);
  assertErrno(bad('{"capabilities":'), Errno.EINVAL, /invalid JSON/);
  assertErrno(bad("[1]"), Errno.EINVAL, /not an object/);
  assertErrno(bad('{"capabilities":3}'), Errno.EINVAL, /capabilities is not an object/);
  assertErrno(bad('{"capabilities":{"max_msg_fds":"16"}}'), Errno.EINVAL, /max_msg_fds/);
  assertErrno(bad('{"capabilities":{"max_msg_fds":-1}}'), Errno.EINVAL, /max_msg_fds/);
  assertErrno(bad('{"capabilities":{"max_dma_maps":1.5}}'), Errno.EINVAL, /max_dma_maps/);
  assertErrno(bad('{"capabilities":{"write_multiple":1}}'), Errno.EINVAL, /write_multiple/);
  assertErrno(bad('{"capabilities":{"twin_socket":true}}'), Errno.EINVAL, /twin_socket/);
  assertErrno(bad('{"capabilities":{"migration":[]}}'), Errno.EINVAL, /migration/);
  assertErrno(bad('{"capabilities":{"pgsizes":18446744073709551616}}'), Errno.EINVAL, /pgsizes/);
  assertErrno(bad('{"capabilities":{"pgsizes":8192}}'), Errno.ENOTSUP, /page size/);
  // "1e4" is a valid JSON number but our "4096" is longer, and 4 KiB xfer cannot be dropped
  assertErrno(
    () =>
      negotiate(versionPayload('{"capabilities":{"max_data_xfer_size":1e4}}'), {
        ...OURS,
        maxDataXferSize: 4096,
      }),
    Errno.E2BIG,
    /exceeds the request/,
  );
});

Deno.test("VERSION: capability values at and past their lower bounds", () => {
  const at = (json: string) => negotiate(versionPayload(json), OURS).session;
  const low = (json: string, re: RegExp) =>
    assertErrno(() => negotiate(versionPayload(json), OURS), Errno.EINVAL, re);
  assert.equal(at('{"capabilities":{"max_data_xfer_size":4096}}').maxDataXferSize, 4096);
  low('{"capabilities":{"max_data_xfer_size":4095}}', /max_data_xfer_size 4095 is below 4096/);
  low('{"capabilities":{"max_data_xfer_size":0}}', /max_data_xfer_size/);
  assert.equal(at('{"capabilities":{"max_msg_fds":1}}').serverMaxMsgFds, 1);
  low('{"capabilities":{"max_msg_fds":0}}', /max_msg_fds 0/);
  assert.equal(at('{"capabilities":{"max_dma_maps":1}}').maxDmaMaps, 1);
  low('{"capabilities":{"max_dma_maps":0}}', /max_dma_maps 0/);
});

Deno.test("VERSION: unknown keys are ignored (later minor versions may add some)", () => {
  const n = negotiate(
    versionPayload('{"x":1,"capabilities":{"future":{"a":1},"max_msg_fds":4}}'),
    OURS,
  );
  assert.deepEqual(n.reply.caps, { maxMsgFds: 4 });
});
