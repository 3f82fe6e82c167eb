import assert from "node:assert/strict";
import { BouncePool } from "./bounce_pool.ts";
import { type MessageDma, SessionMemory } from "./memory.ts";
import { DmaTable } from "./table.ts";
import { DmaMapFlags } from "../protocol/dma.ts";
import { Errno, ErrnoError, isErrno } from "../sys/errno.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("buffers are handed out concurrently up to the limit, never beyond", async () => {
  const pool = new BouncePool(1000);
  const a = await pool.acquire(400);
  const b = await pool.acquire(600);
  assert.equal(pool.inUse, 1000);
  const got: Uint8Array[] = [];
  pool.acquire(1).then((x) => got.push(x));
  await tick();
  assert.equal(got.length, 0, "must wait: the limit is reached");
  pool.release(a);
  await tick();
  assert.equal(got[0].length, 1);
  assert.equal(pool.inUse, 601);
  pool.release(b);
  pool.release(got[0]);
  assert.equal(pool.inUse, 0);
  assert.equal(pool.peak, 1000);
});

Deno.test("waiters are served in FIFO order: a big request is not starved by small ones", async () => {
  const pool = new BouncePool(100);
  const first = await pool.acquire(90);
  const order: string[] = [];
  const big = pool.acquire(100).then((b) => (order.push("big"), b));
  const small = pool.acquire(5).then((b) => (order.push("small"), b)); // would fit now, must queue
  await tick();
  assert.deepEqual(order, []);
  assert.equal(pool.waiting, 2);
  pool.release(first);
  const bigBuf = await big;
  await tick();
  assert.deepEqual(order, ["big"]);
  pool.release(bigBuf);
  pool.release(await small);
  assert.deepEqual(order, ["big", "small"]);
});

Deno.test("a single request larger than the limit is refused by the pool (callers split)", async () => {
  const pool = new BouncePool(64);
  await assert.rejects(() => pool.acquire(65), (e) => isErrno(e, Errno.E2BIG));
  await assert.rejects(() => pool.acquire(0), (e) => isErrno(e, Errno.E2BIG));
});

Deno.test("disconnect fails the waiters; buffers come back from their holders", async () => {
  const pool = new BouncePool(10);
  const held = await pool.acquire(10);
  const waiting = pool.acquire(5);
  pool.failWaiters(new ErrnoError(Errno.ECONNRESET, "client disconnected"));
  await assert.rejects(() => waiting, (e) => isErrno(e, Errno.ECONNRESET));
  pool.release(held);
  assert.equal(pool.inUse, 0);
  assert.throws(() => pool.release(held), /twice/);
});

/** Message DMA over a plain array standing for the client's RAM, with random delays. */
class FakeClient implements MessageDma {
  readonly ram = new Uint8Array(1 << 20);
  readonly pool: BouncePool;
  maxInUse = 0;
  constructor(limit: number) {
    this.pool = new BouncePool(limit);
  }
  get maxBuffer() {
    return this.pool.limit;
  }
  reads = 0;
  async read(addr: bigint, dst: Uint8Array) {
    this.reads++;
    await new Promise((r) => setTimeout(r, Math.random() * 3));
    dst.set(this.ram.subarray(Number(addr), Number(addr) + dst.length));
  }
  #pending = 0;
  #waiters: (() => void)[] = [];
  /** Like the real client: the bytes leave at once, land (in order) a little later. */
  async write(addr: bigint, src: Uint8Array) {
    const copy = src.slice();
    this.#pending++;
    await new Promise((r) => setTimeout(r, Math.random() * 3));
    this.ram.set(copy, Number(addr));
    if (--this.#pending === 0) this.#waiters.splice(0).forEach((w) => w());
  }
  settled() {
    return this.#pending ? new Promise<void>((r) => this.#waiters.push(r)) : undefined;
  }
  async acquire(n: number) {
    const b = await this.pool.acquire(n);
    this.maxInUse = Math.max(this.maxInUse, this.pool.inUse);
    assert.ok(this.pool.inUse <= this.pool.limit, "limit exceeded");
    return b;
  }
  releaseBuffer(b: Uint8Array) {
    this.pool.release(b);
  }
}

Deno.test("many concurrent transfers larger than the limit complete, limit held throughout", async () => {
  const limit = 4096;
  const client = new FakeClient(limit);
  const table = new DmaTable();
  table.map(0n, BigInt(client.ram.length), 0n, DmaMapFlags.READ | DmaMapFlags.WRITE, undefined);
  const mem = new SessionMemory(table, client);
  client.ram.forEach((_, i) => client.ram[i] = (i * 7) & 0xff);
  // 8 concurrent "requests": each copies 20 KiB from one area to another through transfer().
  const jobs = Array.from({ length: 8 }, async (_, j) => {
    const src = BigInt(j * 40960), dst = BigInt(j * 40960 + 20480);
    const data = new Uint8Array(20480);
    await mem.transfer(src, data.length, false, (segs, off) => {
      let o = off;
      for (const s of segs) (data.set(s, o), o += s.length);
    });
    await mem.transfer(dst, data.length, true, (segs, off) => {
      let o = off;
      for (const s of segs) (s.set(data.subarray(o, o + s.length)), o += s.length);
    });
  });
  await Promise.all(jobs);
  await client.settled();
  await new Promise((r) => setTimeout(r, 0)); // buffers go back right after the acknowledgements
  assert.equal(client.pool.inUse, 0);
  assert.ok(client.maxInUse <= limit);
  assert.ok(client.maxInUse > limit / 2, "transfers overlapped");
  for (let j = 0; j < 8; j++) {
    const a = client.ram.subarray(j * 40960, j * 40960 + 20480);
    const b = client.ram.subarray(j * 40960 + 20480, j * 40960 + 40960);
    assert.deepEqual(b, a);
  }
});

Deno.test("overwrite mappings skip fetching the guest bytes and start zeroed", async () => {
  const client = new FakeClient(4096);
  const table = new DmaTable();
  table.map(0n, 8192n, 0n, DmaMapFlags.READ | DmaMapFlags.WRITE, undefined);
  const mem = new SessionMemory(table, client);
  client.ram.fill(0xaa);
  const stale = await client.acquire(64); // leave old bytes in a pooled buffer
  stale.fill(0x55);
  client.releaseBuffer(stale);
  const m = await mem.map(0n, 64, "overwrite");
  assert.equal(client.reads, 0, "no DMA_READ for a range the device overwrites");
  assert.ok(m.segments[0].every((b) => b === 0), "no stale bytes from the pool");
  m.segments[0].fill(7);
  await m.release();
  await client.settled();
  assert.ok(client.ram.subarray(0, 64).every((b) => b === 7));
  const partial = await mem.map(100n, 8, true);
  assert.equal(client.reads, 1, "a partial writer gets the old bytes first");
  assert.ok(partial.segments[0].every((b) => b === 0xaa));
  await partial.release();
});
