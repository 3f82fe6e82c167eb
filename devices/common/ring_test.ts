import assert from "node:assert/strict";
import { entryAddr, readEntries, ringDistance, writeEntries } from "./ring.ts";
import { FakeGuestMemory } from "../virtio/testing/fake_memory.ts";

const RING = { base: 0x100n, count: 4, entrySize: 8 };

Deno.test("ring: addresses and distances go round", () => {
  assert.equal(entryAddr(RING, 3), 0x118n);
  assert.equal(ringDistance(RING, 1, 3), 2);
  assert.equal(ringDistance(RING, 3, 1), 2);
  assert.equal(ringDistance(RING, 2, 2), 0);
});

Deno.test("ring: a run that passes the end is read and written in two pieces, never beyond", async () => {
  const mem = new FakeGuestMemory({ size: 0x200 });
  mem.ram.fill(0xee);
  const writes: [bigint, number][] = [];
  mem.onWrite = (addr, src) => writes.push([addr, src.length]);
  const run = Uint8Array.from({ length: 24 }, (_, i) => i + 1);
  await writeEntries(mem, RING, 3, run);
  assert.deepEqual(writes, [[0x118n, 8], [0x100n, 16]]);
  assert.equal(mem.ram[0x120], 0xee, "nothing written past the ring");
  assert.deepEqual([...await readEntries(mem, RING, 3, 3)], [...run]);
  assert.deepEqual([...await readEntries(mem, RING, 0, 2)], [...run.subarray(8)]);
  await assert.rejects(() => writeEntries(mem, RING, 0, new Uint8Array(40)), RangeError);
  await assert.rejects(() => writeEntries(mem, RING, 4, new Uint8Array(8)), RangeError);
  await assert.rejects(() => writeEntries(mem, RING, 0, new Uint8Array(5)), RangeError);
});
