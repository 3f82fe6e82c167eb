import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import {
  Command,
  commandName,
  decodeHeader,
  encodeHeader,
  Flags,
  messageType,
  SIZE,
  validateHeader,
} from "./header.ts";
import { fromHex } from "./hex.ts";
import { assertErrno } from "./testutil.ts";

// QEMU's first DMA_MAP of the sample boot: id 1, cmd 2, size 48.
const DMA_MAP_HEADER = fromHex("0100 0200 30000000 00000000 00000000");

Deno.test("header: golden decode and re-encode", () => {
  const h = decodeHeader(DMA_MAP_HEADER);
  assert.deepEqual(h, { id: 1, cmd: Command.DMA_MAP, size: 48, flags: 0, error: 0 });
  const out = new Uint8Array(SIZE);
  encodeHeader(h, out);
  assert.deepEqual(out, DMA_MAP_HEADER);
});

Deno.test("header: error reply fields", () => {
  const h = decodeHeader(fromHex("ffff 1200 10000000 21000000 5f000000"));
  assert.equal(h.id, 0xffff);
  assert.equal(commandName(h.cmd), "MIG_DATA_WRITE");
  assert.equal(messageType(h), Flags.TYPE_REPLY);
  assert.equal(h.flags & Flags.ERROR, Flags.ERROR);
  assert.equal(h.error, Errno.ENOTSUP);
});

Deno.test("header: short buffer, bad size and bad type are rejected", () => {
  assertErrno(() => decodeHeader(DMA_MAP_HEADER.subarray(0, 15)), Errno.EINVAL);
  const h = decodeHeader(DMA_MAP_HEADER);
  validateHeader(h, 4096);
  assertErrno(() => validateHeader({ ...h, size: 15 }, 4096), Errno.EINVAL);
  assertErrno(() => validateHeader({ ...h, size: 4097 }, 4096), Errno.E2BIG);
  assertErrno(() => validateHeader({ ...h, flags: 2 }, 4096), Errno.EINVAL);
});

Deno.test("commandName: unknown commands, including 14", () => {
  assert.equal(commandName(14), "CMD_14");
  assert.equal(commandName(Command.REGION_WRITE_MULTI), "REGION_WRITE_MULTI");
});
