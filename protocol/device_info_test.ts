import assert from "node:assert/strict";
import { DeviceGetInfo, DeviceInfoFlags, DeviceReset } from "./device_info.ts";
import { Errno } from "./errors.ts";
import { Command } from "./header.ts";
import { fromHex } from "./hex.ts";
import { encodeCommand, encodeReply, splitMessage } from "./message.ts";
import { assertErrno, assertGoldenCommand, assertGoldenReply } from "./testutil.ts";

// QEMU's GET_INFO (sample id 3): size 32, argsz 16, everything else zero.
const QEMU_GET_INFO = fromHex(`
  0300 0400 20000000 00000000 00000000  # header: id 3, DEVICE_GET_INFO, size 32
  10000000 00000000 00000000 00000000   # argsz 16, flags, num_regions, num_irqs`);

Deno.test("DEVICE_GET_INFO: QEMU's request, golden whole message", () => {
  assertGoldenCommand(DeviceGetInfo, QEMU_GET_INFO, { argsz: 16 });
});

Deno.test("DEVICE_GET_INFO: golden reply (RESET|PCI, 9 regions, 5 irqs)", () => {
  const bytes = fromHex("10000000 03000000 09000000 05000000");
  assertGoldenReply(DeviceGetInfo, bytes, {
    argsz: 16,
    flags: DeviceInfoFlags.RESET | DeviceInfoFlags.PCI,
    numRegions: 9,
    numIrqs: 5,
  });
  assert.equal(encodeReply(3, Command.DEVICE_GET_INFO, bytes).length, 32);
});

Deno.test("DEVICE_GET_INFO: malformed requests", () => {
  const d = (s: string) => () => DeviceGetInfo.decodeRequest(fromHex(s));
  assertErrno(d("08000000 00000000 00000000 00000000"), Errno.EINVAL, /argsz 8 < 16/);
  assertErrno(d("10000000 02000000 00000000 00000000"), Errno.EINVAL, /flags must be zero/);
  assertErrno(d("10000000 00000000 09000000 00000000"), Errno.EINVAL, /num_regions/);
  assertErrno(d("10000000 00000000 00000000 05000000"), Errno.EINVAL, /num_irqs/);
  assertErrno(d("10000000 00000000 00000000"), Errno.EINVAL, /12 bytes < 16/);
  assertErrno(d("10000000 00000000 00000000 00000000 00"), Errno.EINVAL, /trailing/);
});

Deno.test("DEVICE_GET_INFO: malformed replies", () => {
  const d = (s: string) => () => DeviceGetInfo.decodeReply(fromHex(s));
  assertErrno(d("10000000 04000000 09000000 05000000"), Errno.EINVAL, /flag bits 0x4/);
  assertErrno(d("0c000000 03000000 09000000 05000000"), Errno.EINVAL, /argsz 12/);
  assertErrno(d("10000000 03000000"), Errno.EINVAL);
});

Deno.test("DEVICE_RESET: header-only both ways (QEMU sends size 16)", () => {
  const msg = fromHex("1c00 0d00 10000000 00000000 00000000");
  const { header, payload } = splitMessage(msg);
  assert.equal(header.cmd, Command.DEVICE_RESET);
  DeviceReset.decodeRequest(payload);
  assert.deepEqual(encodeCommand(0x1c, Command.DEVICE_RESET, DeviceReset.encodeRequest()), msg);
  assert.equal(encodeReply(0x1c, Command.DEVICE_RESET, DeviceReset.encodeReply()).length, 16);
  DeviceReset.decodeReply(new Uint8Array(0));
  assertErrno(() => DeviceReset.decodeRequest(fromHex("00")), Errno.EINVAL);
  assertErrno(() => DeviceReset.decodeReply(fromHex("00")), Errno.EINVAL);
});
