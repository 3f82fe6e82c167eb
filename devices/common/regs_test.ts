import assert from "node:assert/strict";
import { dwordRead, dwordWrite, RegisterFile } from "./regs.ts";

function file() {
  const v = { a: 0x11223344, b: 0x5566, c: 0x77 };
  const writes: string[] = [];
  const regs = new RegisterFile([
    { name: "a", offset: 0, width: 4, read: () => v.a, write: (x) => (v.a = x) },
    { name: "b", offset: 4, width: 2, read: () => v.b, write: (x) => (v.b = x) },
    { name: "c", offset: 6, width: 1, read: () => v.c },
    { name: "d", offset: 8, width: 4, read: () => 0xffffffff, write: (x) => writes.push(`d=${x}`) },
  ]);
  return { v, regs, writes };
}

Deno.test("register file: exact, wide, partial and uncovered reads", () => {
  const { regs } = file();
  const b4 = new Uint8Array(4);
  regs.read(0, b4);
  assert.deepEqual([...b4], [0x44, 0x33, 0x22, 0x11]);
  const b8 = new Uint8Array(8);
  regs.read(0, b8);
  assert.deepEqual([...b8], [0x44, 0x33, 0x22, 0x11, 0x66, 0x55, 0x77, 0]);
  const b1 = new Uint8Array(1);
  regs.read(2, b1);
  assert.deepEqual([...b1], [0x22]);
  const far = new Uint8Array([9, 9]);
  regs.read(0x20, far);
  assert.deepEqual([...far], [0, 0]);
  const d = new Uint8Array(4);
  regs.read(8, d);
  assert.deepEqual([...d], [0xff, 0xff, 0xff, 0xff]);
});

Deno.test("register file: writes split over registers, partial writes merge, RO ignored", () => {
  const { v, regs, writes } = file();
  regs.write(0, new Uint8Array([1, 2, 3, 4, 5, 6, 7]));
  assert.equal(v.a, 0x04030201);
  assert.equal(v.b, 0x0605);
  assert.equal(v.c, 0x77); // read-only
  regs.write(1, new Uint8Array([0xaa]));
  assert.equal(v.a, 0x0403aa01);
  regs.write(8, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
  assert.deepEqual(writes, [`d=${0xffffffff}`]);
});

Deno.test("register file rejects overlapping registers", () => {
  assert.throws(() =>
    new RegisterFile([
      { name: "x", offset: 0, width: 4, read: () => 0 },
      { name: "y", offset: 2, width: 2, read: () => 0 },
    ])
  );
});

Deno.test("dword space: unaligned reads span dwords, partial writes merge with peek", () => {
  const words = new Map<number, number>([[0, 0x11223344], [4, 0x55667788]]);
  const reads: number[] = [];
  const read = (dw: number) => (reads.push(dw), words.get(dw) ?? 0);
  const out = new Uint8Array(4);
  dwordRead(2, out, read);
  assert.deepEqual([...out], [0x22, 0x11, 0x88, 0x77]);
  assert.deepEqual(reads, [0, 4], "each covered dword read once (side effects)");
  const written: [number, number][] = [];
  dwordWrite(3, Uint8Array.of(0xaa, 0xbb), (dw) => words.get(dw) ?? 0, (dw, v) => {
    written.push([dw, v]);
  });
  assert.deepEqual(written, [[0, 0xaa223344], [4, 0x556677bb]]);
  written.length = 0;
  dwordWrite(4, Uint8Array.of(1, 2, 3, 4), () => assert.fail("a whole dword needs no peek"), (
    dw,
    v,
  ) => written.push([dw, v]));
  assert.deepEqual(written, [[4, 0x04030201]]);
});
