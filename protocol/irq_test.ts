import assert from "node:assert/strict";
import { Errno } from "./errors.ts";
import { fromHex } from "./hex.ts";
import { DeviceGetIrqInfo, DeviceSetIrqs, IrqIndex, IrqInfoFlags, IrqSetFlags } from "./irq.ts";
import { assertErrno, assertGoldenCommand, assertGoldenReply } from "./testutil.ts";

Deno.test("GET_IRQ_INFO: golden request and reply (MSI-X, 2 vectors)", () => {
  const req = fromHex("10000000 00000000 02000000 00000000");
  assert.deepEqual(DeviceGetIrqInfo.decodeRequest(req), { argsz: 16, index: IrqIndex.MSIX });
  assert.deepEqual(DeviceGetIrqInfo.encodeRequest({ argsz: 16, index: 2 }), req);

  const rep = fromHex("10000000 03000000 02000000 02000000");
  assertGoldenReply(DeviceGetIrqInfo, rep, {
    argsz: 16,
    flags: IrqInfoFlags.EVENTFD | IrqInfoFlags.MASKABLE,
    index: 2,
    count: 2,
  });
});

Deno.test("GET_IRQ_INFO: malformed", () => {
  const q = (s: string) => () => DeviceGetIrqInfo.decodeRequest(fromHex(s));
  const r = (s: string) => () => DeviceGetIrqInfo.decodeReply(fromHex(s));
  assertErrno(q("10000000 01000000 02000000 00000000"), Errno.EINVAL, /flags/);
  assertErrno(q("10000000 00000000 02000000 02000000"), Errno.EINVAL, /count/);
  assertErrno(q("0f000000 00000000 02000000 00000000"), Errno.EINVAL, /argsz 15/);
  assertErrno(q("10000000 00000000 02000000 0000000000"), Errno.EINVAL, /trailing/);
  assertErrno(r("10000000 10000000 02000000 02000000"), Errno.EINVAL, /flag bits 0x10/);
  assertErrno(r("08000000 01000000 02000000 02000000"), Errno.EINVAL, /argsz 8/);
});

// QEMU's INTx setup (sample id 24): TRIGGER|EVENTFD, one eventfd as ancillary data.
const QEMU_SET_INTX = fromHex(`
  1800 0800 24000000 00000000 00000000  # header: id 24, DEVICE_SET_IRQS, size 36
  14000000 24000000                     # argsz 20, DATA_EVENTFD|ACTION_TRIGGER
  00000000 00000000 01000000            # index INTx, start 0, count 1`);

Deno.test("SET_IRQS: QEMU's eventfd trigger, golden whole message", () => {
  assertGoldenCommand(DeviceSetIrqs, QEMU_SET_INTX, {
    flags: IrqSetFlags.DATA_EVENTFD | IrqSetFlags.ACTION_TRIGGER,
    index: IrqIndex.INTX,
    start: 0,
    count: 1,
    data: new Uint8Array(0),
  });
});

Deno.test("SET_IRQS: disable whole index (DATA_NONE|TRIGGER, start 0, count 0)", () => {
  const bytes = fromHex("14000000 21000000 02000000 00000000 00000000");
  const req = DeviceSetIrqs.decodeRequest(bytes);
  assert.deepEqual(req, { flags: 0x21, index: 2, start: 0, count: 0, data: new Uint8Array(0) });
  assert.deepEqual(DeviceSetIrqs.encodeRequest(req), bytes);
});

Deno.test("SET_IRQS: DATA_BOOL|ACTION_UNMASK with one byte per vector", () => {
  const bytes = fromHex("17000000 12000000 02000000 01000000 03000000 010001");
  const req = DeviceSetIrqs.decodeRequest(bytes);
  assert.deepEqual(req, {
    flags: IrqSetFlags.DATA_BOOL | IrqSetFlags.ACTION_UNMASK,
    index: 2,
    start: 1,
    count: 3,
    data: fromHex("010001"),
  });
  assert.deepEqual(DeviceSetIrqs.encodeRequest(req), bytes);
});

Deno.test("SET_IRQS: malformed requests", () => {
  const d = (s: string) => () => DeviceSetIrqs.decodeRequest(fromHex(s));
  const tail = "02000000 00000000 01000000";
  assertErrno(d(`14000000 20000000 ${tail}`), Errno.EINVAL, /exactly one DATA/); // no DATA
  assertErrno(d(`14000000 04000000 ${tail}`), Errno.EINVAL, /exactly one DATA/); // no ACTION
  assertErrno(d(`14000000 25000000 ${tail}`), Errno.EINVAL, /exactly one DATA/); // 2 DATA
  assertErrno(d(`14000000 2c000000 ${tail}`), Errno.EINVAL, /exactly one DATA/); // 2 ACTION
  assertErrno(d(`14000000 64000000 ${tail}`), Errno.EINVAL, /flag bits 0x40/);
  assertErrno(d(`18000000 24000000 ${tail}`), Errno.EINVAL, /20 bytes < 24/); // argsz > payload
  assertErrno(d(`14000000 22000000 ${tail} 01`), Errno.EINVAL, /trailing/); // argsz < payload
  assertErrno(d(`10000000 24000000 ${tail}`), Errno.EINVAL, /argsz 16 < 20/);
  // DATA_BOOL with 2 bytes for count 3; DATA_NONE / DATA_EVENTFD with data bytes
  assertErrno(
    d("16000000 22000000 02000000 00000000 03000000 0101"),
    Errno.EINVAL,
    /2 data bytes, expected 3/,
  );
  assertErrno(d(`15000000 21000000 ${tail} 01`), Errno.EINVAL, /expected 0/);
  assertErrno(d(`15000000 24000000 ${tail} 01`), Errno.EINVAL, /expected 0/);
  assertErrno(d("14000000 21000000 02000000 ffffffff 02000000"), Errno.EINVAL, /wraps/);
  assertErrno(d("14000000 21000000 02000000 00000000"), Errno.EINVAL, /16 bytes < 20/);
});

Deno.test("SET_IRQS: empty reply", () => {
  assert.equal(DeviceSetIrqs.encodeReply().length, 0);
  DeviceSetIrqs.decodeReply(new Uint8Array(0));
  assertErrno(() => DeviceSetIrqs.decodeReply(new Uint8Array(1)), Errno.EINVAL);
});
