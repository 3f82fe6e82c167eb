import assert from "node:assert/strict";
import { MemoryBackend } from "./backend.ts";

Deno.test("MemoryBackend: vectored read and write", () => {
  const b = new MemoryBackend(4096);
  assert.equal(b.size, 4096n);
  assert.equal(b.readonly, false);
  b.writev(512n, [new Uint8Array([1, 2]), new Uint8Array([3])]);
  const x = new Uint8Array(1);
  const y = new Uint8Array(3);
  b.readv(511n, [x, y]);
  assert.deepEqual([...x, ...y], [0, 1, 2, 3]);
});

Deno.test("MemoryBackend: bounds, read-only, flush and close", () => {
  const b = new MemoryBackend(new Uint8Array(1024), { readonly: true });
  assert.throws(() => b.readv(1000n, [new Uint8Array(25)]), RangeError);
  assert.throws(() => b.readv(-1n, [new Uint8Array(1)]), RangeError);
  assert.throws(() => b.writev(0n, [new Uint8Array(1)]));
  b.flush();
  assert.equal(b.flushes, 1);
  b.close();
  assert.throws(() => b.readv(0n, [new Uint8Array(1)]));
});
