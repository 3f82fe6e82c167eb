import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import { Command, Flags } from "./header.ts";
import { fromHex } from "./hex.ts";
import {
  encodeCommand,
  encodeMessage,
  encodeReply,
  errorReply,
  isKnownCommand,
  isServerCommand,
  NoPayload,
  splitMessage,
} from "./message.ts";
import { assertErrno } from "./testutil.ts";

Deno.test("encodeMessage: header with computed size, then the payload", () => {
  const msg = encodeMessage({ id: 0x1234, cmd: Command.REGION_READ }, fromHex("aabbccdd"));
  assert.deepEqual(
    msg,
    fromHex(`
      3412      # id
      0900      # cmd REGION_READ
      14000000  # size 20
      00000000  # flags: command
      00000000  # error
      aabbccdd  # payload`),
  );
});

Deno.test("errorReply: header alone, REPLY|ERROR, errno in error", () => {
  assert.deepEqual(
    errorReply(7, Command.DEVICE_GET_REGION_INFO, Errno.EINVAL),
    fromHex("0700 0500 10000000 21000000 16000000"),
  );
});

Deno.test("encodeReply / encodeCommand set the type and NO_REPLY bits", () => {
  assert.deepEqual(
    encodeReply(3, Command.DEVICE_RESET),
    fromHex("0300 0d00 10000000 01000000 00000000"),
  );
  const posted = encodeCommand(9, Command.REGION_WRITE, fromHex("00"), true);
  assert.equal(splitMessage(posted).header.flags, Flags.NO_REPLY);
  assert.equal(splitMessage(encodeCommand(9, Command.REGION_WRITE)).header.flags, 0);
});

Deno.test("encodeMessage rejects out-of-range header fields as a local bug", () => {
  assert.throws(() => encodeMessage({ id: 0x10000, cmd: 1 }), RangeError);
  assert.throws(() => encodeMessage({ id: 1, cmd: -1 }), RangeError);
  assert.throws(() => encodeMessage({ id: 1, cmd: 1, error: 2 ** 32 }), RangeError);
});

Deno.test("splitMessage: header and payload view; size must match the buffer", () => {
  const msg = fromHex("0100 0200 12000000 00000000 00000000 abcd");
  const { header, payload } = splitMessage(msg);
  assert.deepEqual(header, { id: 1, cmd: 2, size: 18, flags: 0, error: 0 });
  assert.deepEqual(payload, fromHex("abcd"));
  assertErrno(() => splitMessage(msg.subarray(0, 17)), Errno.EINVAL, /size field 18/);
  assertErrno(() => splitMessage(msg.subarray(0, 15)), Errno.EINVAL, /short header/);
});

Deno.test("isKnownCommand: 1-13 and 15-18; 14 (removed DIRTY_PAGES) is unknown", () => {
  for (let c = 1; c <= 18; c++) assert.equal(isKnownCommand(c), c !== 14, `command ${c}`);
  for (const c of [0, 14, 19, 100, 0xffff]) assert.equal(isKnownCommand(c), false);
});

Deno.test("isServerCommand: only DMA_READ and DMA_WRITE go server to client", () => {
  assert.equal(isServerCommand(Command.DMA_READ), true);
  assert.equal(isServerCommand(Command.DMA_WRITE), true);
  assert.equal(isServerCommand(Command.REGION_READ), false);
});

Deno.test("NoPayload: empty only", () => {
  NoPayload.decode(new Uint8Array(0));
  assert.equal(NoPayload.encode().length, 0);
  assertErrno(() => NoPayload.decode(fromHex("00"), "X"), Errno.EINVAL, /X: 1 trailing/);
});
