import assert from "node:assert/strict";
import { sliceBuffers, totalLength } from "./buffers.ts";
import { DescFlag } from "../../spec/virtio.ts";
import { readChain } from "./descriptors.ts";
import { VirtqueueError } from "./errors.ts";
import { FakeGuestMemory } from "./testing/fake_memory.ts";
import { needEvent, SplitQueue } from "./virtqueue.ts";

const TABLE = 0x1000;

function desc(
  mem: FakeGuestMemory,
  table: number,
  i: number,
  addr: number,
  len: number,
  flags = 0,
  next = 0,
) {
  const v = new DataView(mem.ram.buffer, table + 16 * i, 16);
  v.setBigUint64(0, BigInt(addr), true);
  v.setUint32(8, len, true);
  v.setUint16(12, flags, true);
  v.setUint16(14, next, true);
}

Deno.test("readChain: direct chain split by direction", async () => {
  const mem = new FakeGuestMemory({ size: 0x10000 });
  desc(mem, TABLE, 3, 0x100, 16, DescFlag.NEXT, 5);
  desc(mem, TABLE, 5, 0x200, 512, DescFlag.NEXT | DescFlag.WRITE, 0);
  desc(mem, TABLE, 0, 0x400, 1, DescFlag.WRITE);
  const chain = await readChain(mem, BigInt(TABLE), 8, 3);
  assert.equal(chain.head, 3);
  assert.deepEqual(chain.readable, [{ addr: 0x100n, len: 16 }]);
  assert.deepEqual(chain.writable, [{ addr: 0x200n, len: 512 }, { addr: 0x400n, len: 1 }]);
});

Deno.test("readChain: indirect table after direct descriptors; indirect WRITE flag ignored", async () => {
  const mem = new FakeGuestMemory({ size: 0x10000 });
  desc(mem, TABLE, 0, 0x100, 16, DescFlag.NEXT, 1);
  desc(mem, TABLE, 1, 0x2000, 32, DescFlag.INDIRECT | DescFlag.WRITE);
  desc(mem, 0x2000, 0, 0x300, 8, DescFlag.NEXT, 1);
  desc(mem, 0x2000, 1, 0x400, 1, DescFlag.WRITE);
  const chain = await readChain(mem, BigInt(TABLE), 4, 0);
  assert.deepEqual(chain.readable, [{ addr: 0x100n, len: 16 }, { addr: 0x300n, len: 8 }]);
  assert.deepEqual(chain.writable, [{ addr: 0x400n, len: 1 }]);
});

Deno.test("readChain: total length above 4 GiB is rejected", async () => {
  const mem = new FakeGuestMemory({ size: 0x10000 });
  desc(mem, TABLE, 0, 0x100, 0xffffffff, DescFlag.NEXT, 1);
  desc(mem, TABLE, 1, 0x100, 2, DescFlag.WRITE);
  await assert.rejects(async () => await readChain(mem, BigInt(TABLE), 4, 0), VirtqueueError);
});

Deno.test("SplitQueue: avail ring wraps, used ring wraps, used idx wraps at 2^16", async () => {
  const mem = new FakeGuestMemory({ size: 0x10000 });
  const cfg = { size: 4, desc: 0x1000n, driver: 0x2000n, device: 0x3000n };
  const q = new SplitQueue(mem, cfg, false);
  const view = new DataView(mem.ram.buffer);
  let idx = 0;
  for (let round = 0; round < 3; round++) {
    for (let k = 0; k < 3; k++) view.setUint16(0x2004 + 2 * ((idx + k) % 4), idx + k, true);
    idx += 3;
    view.setUint16(0x2002, idx, true);
    const heads = await q.popAvailable();
    assert.deepEqual(heads, [idx - 3, idx - 2, idx - 1]);
    await q.pushUsed(heads.map((id) => ({ id, len: 7 })));
    assert.equal(view.getUint16(0x3002, true), idx);
    assert.equal(view.getUint32(0x3004 + 8 * ((idx - 1) % 4), true), idx - 1);
  }
  assert.deepEqual(await q.popAvailable(), []);
  view.setUint16(0x2002, 5 + 9, true);
  await assert.rejects(async () => await q.popAvailable(), VirtqueueError);
});

Deno.test("SplitQueue: popAvailable honours max", async () => {
  const mem = new FakeGuestMemory({ size: 0x10000 });
  const q = new SplitQueue(
    mem,
    { size: 4, desc: 0x1000n, driver: 0x2000n, device: 0x3000n },
    false,
  );
  const view = new DataView(mem.ram.buffer);
  [2, 1, 0].forEach((h, i) => view.setUint16(0x2004 + 2 * i, h, true));
  view.setUint16(0x2002, 3, true);
  assert.deepEqual(await q.popAvailable(2), [2, 1]);
  assert.deepEqual(await q.popAvailable(2), [0]);
});

Deno.test("needEvent matches vring_need_event incl. wrap-around", () => {
  assert.equal(needEvent(0, 1, 0), true);
  assert.equal(needEvent(5, 5, 4), false);
  assert.equal(needEvent(5, 6, 5), true);
  assert.equal(needEvent(5, 8, 4), true);
  assert.equal(needEvent(0xffff, 1, 0xfffe), true);
  assert.equal(needEvent(10, 3, 1), false);
});

Deno.test("sliceBuffers and totalLength", () => {
  const bufs = [{ addr: 0x100n, len: 4 }, { addr: 0x200n, len: 0 }, { addr: 0x300n, len: 8 }];
  assert.equal(totalLength(bufs), 12);
  assert.deepEqual(sliceBuffers(bufs, 2, 6), [{ addr: 0x102n, len: 2 }, { addr: 0x300n, len: 4 }]);
  assert.deepEqual(sliceBuffers(bufs, 12, 0), []);
  assert.throws(() => sliceBuffers(bufs, 10, 3), RangeError);
});

Deno.test("transferv: offsets across ranges and chunks, mappings released", async () => {
  const mem = new FakeGuestMemory({ size: 0x10000, chunkSize: 3, segmentSize: 0x1000 });
  const calls: [number, number[]][] = [];
  await mem.transferv(
    [{ addr: 0x0ffen, len: 4 }, { addr: 0x2000n, len: 0 }, {
      addr: 0x3000n,
      len: 2,
    }],
    false,
    (segs, off) => {
      calls.push([off, segs.map((s) => s.length)]);
    },
  );
  assert.deepEqual(calls, [[0, [2, 1]], [3, [1]], [4, [2]]]);
  assert.equal(mem.live, 0);
});
