import assert from "node:assert/strict";
import { MsixState } from "./msix.ts";
import { Errno, isErrno } from "../sys/errno.ts";

const isEinval = (e: unknown) => isErrno(e, Errno.EINVAL);

function entry(m: MsixState, v: number): number[] {
  const b = new Uint8Array(16);
  m.tableRead(v * 16, b);
  const d = new DataView(b.buffer);
  return [0, 4, 8, 12].map((o) => d.getUint32(o, true));
}

function setCtrl(m: MsixState, v: number, ctrl: number): void {
  m.tableWrite(v * 16 + 12, Uint8Array.of(ctrl, 0, 0, 0));
}

Deno.test("reset state: entries masked, PBA clear, sizes", () => {
  const m = new MsixState(2);
  assert.equal(m.tableSize, 32);
  assert.equal(m.pbaSize, 8);
  assert.deepEqual(entry(m, 0), [0, 0, 0, 1]);
  assert.deepEqual(entry(m, 1), [0, 0, 0, 1]);
  const pba = new Uint8Array(8).fill(0xee);
  m.pbaRead(0, pba);
  assert.deepEqual(pba, new Uint8Array(8));
  assert.equal(new MsixState(64).pbaSize, 8);
  assert.equal(new MsixState(65).pbaSize, 16);
  assert.throws(() => new MsixState(0), RangeError);
  assert.throws(() => new MsixState(2049), RangeError);
});

Deno.test("table entry write masks", () => {
  const m = new MsixState(2);
  m.tableWrite(16, new Uint8Array(16).fill(0xff));
  assert.deepEqual(entry(m, 1), [0xfffffffc, 0xffffffff, 0xffffffff, 0x00000001]);
  assert.deepEqual(entry(m, 0), [0, 0, 0, 1]);
  // Unaligned write spanning the end of entry 0 and the start of entry 1.
  m.tableWrite(14, Uint8Array.of(0xaa, 0xaa, 0x03, 0x00));
  assert.deepEqual(entry(m, 0), [0, 0, 0, 1]);
  assert.equal(entry(m, 1)[0], 0xffff0000);
  setCtrl(m, 1, 0xfe);
  assert.equal(entry(m, 1)[3], 0);
});

Deno.test("table mask bits gate delivery only once the client uses the table", () => {
  const m = new MsixState(2);
  assert.ok(!m.tableInUse);
  assert.ok(!m.isMasked(0) && !m.isMasked(1)); // client emulates the table (QEMU)
  m.tableWrite(0, new Uint8Array(4)); // write address of entry 0 only
  assert.ok(m.tableInUse);
  assert.ok(m.isMasked(0) && m.isMasked(1)); // reset value of Mask bits now applies
  setCtrl(m, 0, 0);
  assert.ok(!m.isMasked(0) && m.isMasked(1));
  m.reset();
  assert.ok(!m.tableInUse && !m.isMasked(0));
});

Deno.test("external and function masks", () => {
  const m = new MsixState(3);
  m.setExternalMask(2, true);
  assert.ok(m.isMasked(2) && !m.isMasked(1));
  m.setFunctionMask(true);
  assert.ok(m.functionMasked && m.isMasked(0) && m.isMasked(1));
  m.setFunctionMask(false);
  assert.ok(!m.isMasked(0) && m.isMasked(2));
  m.clearExternalMasks();
  assert.ok(!m.isMasked(2));
});

Deno.test("unmask notifications fire on masked -> unmasked transitions only", () => {
  const m = new MsixState(3);
  const seen: number[] = [];
  const off = m.onUnmask((v) => seen.push(v));
  m.setExternalMask(1, true);
  m.setExternalMask(1, true);
  m.setExternalMask(1, false);
  assert.deepEqual(seen, [1]);
  m.setExternalMask(1, false); // already unmasked
  assert.deepEqual(seen, [1]);

  m.setExternalMask(0, true);
  m.setFunctionMask(true);
  m.setFunctionMask(false); // vector 0 stays masked externally
  assert.deepEqual(seen, [1, 1, 2]);

  m.tableWrite(0, new Uint8Array(4)); // table now in use: all masked by their Mask bits
  setCtrl(m, 2, 0);
  assert.deepEqual(seen, [1, 1, 2, 2]);
  m.clearExternalMasks(); // vector 0 still masked by its table entry
  assert.deepEqual(seen, [1, 1, 2, 2]);
  setCtrl(m, 0, 0);
  assert.deepEqual(seen, [1, 1, 2, 2, 0]);
  off();
  m.setExternalMask(0, true);
  m.setExternalMask(0, false);
  assert.equal(seen.length, 5);
});

Deno.test("pending bits and PBA", () => {
  const m = new MsixState(70);
  m.setPending(1);
  m.setPending(9);
  m.setPending(69);
  assert.ok(m.isPending(1) && m.isPending(69) && !m.isPending(0));
  const pba = new Uint8Array(16);
  m.pbaRead(0, pba);
  assert.deepEqual([...pba], [0x02, 0x02, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0]);
  m.pbaWrite(0, new Uint8Array(16)); // read-only: ignored
  m.pbaRead(0, pba);
  assert.equal(pba[0], 0x02);
  m.clearPending(1);
  assert.ok(!m.isPending(1));
  const one = new Uint8Array(1);
  m.pbaRead(8, one);
  assert.equal(one[0], 0x20);
});

Deno.test("reset masks every entry, clears PBA and Function Mask, keeps external masks", () => {
  const m = new MsixState(2);
  const seen: number[] = [];
  m.onUnmask((v) => seen.push(v));
  m.tableWrite(0, new Uint8Array(32).fill(0xff));
  setCtrl(m, 0, 0);
  setCtrl(m, 1, 0);
  m.setPending(0);
  m.setFunctionMask(true);
  m.setExternalMask(1, true);
  seen.length = 0;
  m.reset();
  assert.deepEqual(entry(m, 0), [0, 0, 0, 1]);
  assert.deepEqual(entry(m, 1), [0, 0, 0, 1]);
  assert.ok(!m.isPending(0) && !m.functionMasked);
  assert.ok(m.isMasked(1) && !m.isMasked(0));
  assert.deepEqual(seen, []);
});

Deno.test("out-of-range offsets and vectors throw ErrnoError(EINVAL)", () => {
  const m = new MsixState(2);
  assert.throws(() => m.tableRead(32, new Uint8Array(1)), isEinval);
  assert.throws(() => m.tableRead(28, new Uint8Array(8)), isEinval);
  assert.throws(() => m.tableWrite(-1, new Uint8Array(1)), isEinval);
  assert.throws(() => m.tableWrite(0, new Uint8Array(0)), isEinval);
  assert.throws(() => m.pbaRead(8, new Uint8Array(1)), isEinval);
  assert.throws(() => m.pbaWrite(4, new Uint8Array(8)), isEinval);
  for (const v of [-1, 2, 1.5, NaN]) {
    assert.throws(() => m.isMasked(v), isEinval);
    assert.throws(() => m.setExternalMask(v, true), isEinval);
    assert.throws(() => m.setPending(v), isEinval);
    assert.throws(() => m.isPending(v), isEinval);
  }
});

Deno.test("msix: save/restore keeps table, pending bits and table ownership", () => {
  const a = new MsixState(3);
  a.tableWrite(16, Uint8Array.of(0xfc, 0, 0xe0, 0xfe, 0, 0, 0, 0, 0x41, 0, 0, 0, 0, 0, 0, 0));
  a.setPending(2);
  const b = new MsixState(3);
  b.restore(a.save());
  assert.deepEqual(b.save(), a.save());
  assert.ok(b.tableInUse);
  assert.deepEqual(b.pendingVectors(), [2]);
  assert.equal(b.isMasked(1), false);
  assert.equal(b.isMasked(0), true);
});

Deno.test("msix: restore refuses other sizes and impossible bits", () => {
  const m = new MsixState(3);
  const good = m.save();
  assert.throws(() => m.restore({ ...good, table: new Uint8Array(64) }), /64 bytes, not 48/);
  const reserved = good.table.slice();
  reserved[13] = 1; // Vector Control bits other than Mask are reserved
  assert.throws(() => m.restore({ ...good, table: reserved }), /read-only bits set at byte 13/);
  const pba = good.pba.slice();
  pba[0] = 0x08; // vector 3 of 3
  assert.throws(() => m.restore({ ...good, pba }), /vector 3 \(of 3\)/);
  assert.throws(() => m.restore({ ...good, tableInUse: 1 }), /not a boolean/);
  assert.deepEqual(m.save(), good);
});
