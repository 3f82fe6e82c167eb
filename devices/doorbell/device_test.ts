import assert from "node:assert/strict";
import {
  Doorbell,
  DOORBELL_ID,
  DOORBELL_STATE_VERSION,
  DoorbellControl,
  DoorbellReg,
  DoorbellStatus,
  MAX_JOBS,
  MAX_LOG_ENTRIES,
} from "./device.ts";
import { FakeContext, FakeGuestMemory } from "../virtio/testing/fake_memory.ts";
import { decodeRecord, encodeRecord } from "../../protocol/record.ts";
import { Errno, isErrno } from "../../sys/errno.ts";
import { settle } from "../virtio/testing/setup.ts";

const LOG = 0x1000;

function rig(mem = new FakeGuestMemory({ size: 0x4000 })) {
  const dev = new Doorbell();
  const ctx = new FakeContext(mem);
  dev.attach(ctx);
  const read = (reg: number) => {
    const b = new Uint8Array(4);
    dev.barRead(0, reg, b);
    return new DataView(b.buffer).getUint32(0, true);
  };
  const write = (reg: number, value: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    dev.barWrite(0, reg, b);
  };
  /** The log entries [value, seq] of the first `n` slots. */
  const log = (n: number) => {
    const v = new DataView(mem.ram.buffer, LOG);
    return Array.from(
      { length: n },
      (_, i) => [v.getUint32(8 * i, true), v.getUint32(8 * i + 4, true)],
    );
  };
  const setup = (entries: number, enable = true) => {
    write(DoorbellReg.LOG_LO, LOG);
    write(DoorbellReg.LOG_HI, 0);
    write(DoorbellReg.LOG_SIZE, entries);
    if (enable) write(DoorbellReg.CONTROL, DoorbellControl.ENABLE);
  };
  return { dev, ctx, mem, read, write, log, setup, settle: () => settle({ dev }) };
}

Deno.test("doorbell: identity, plain registers, limits, unknown control bits dropped", () => {
  const r = rig();
  assert.equal(r.read(DoorbellReg.ID), DOORBELL_ID);
  r.write(DoorbellReg.SCRATCH, 0xcafe_f00d);
  assert.equal(r.read(DoorbellReg.SCRATCH), 0xcafe_f00d);
  r.write(DoorbellReg.ID, 5);
  assert.equal(r.read(DoorbellReg.ID), DOORBELL_ID, "read-only");
  r.write(DoorbellReg.LOG_SIZE, MAX_LOG_ENTRIES + 1);
  assert.equal(r.read(DoorbellReg.LOG_SIZE), 0, "too large a log is refused");
  r.write(DoorbellReg.CONTROL, 0xffff_fff0);
  assert.equal(r.read(DoorbellReg.CONTROL), 0);
  const b = new Uint8Array(2);
  r.dev.barRead(0, DoorbellReg.ID + 2, b);
  assert.deepEqual([...b], [0x62, 0x64], "byte-granular access through the register file");
});

Deno.test("doorbell: jobs are logged in order, round the log, counted, with an interrupt", async () => {
  const r = rig();
  r.setup(4, false);
  for (let i = 1; i <= 6; i++) r.write(DoorbellReg.DOORBELL, 100 + i);
  assert.equal(r.read(DoorbellReg.DOORBELL), 6, "queued while disabled");
  r.write(DoorbellReg.CONTROL, DoorbellControl.ENABLE);
  await r.settle();
  assert.equal(r.read(DoorbellReg.COUNT), 6);
  assert.equal(r.read(DoorbellReg.DOORBELL), 0);
  // slots 0-3 took jobs 1-4, then jobs 5-6 went round to slots 0-1
  assert.deepEqual(r.log(4), [[105, 4], [106, 5], [103, 2], [104, 3]]);
  r.write(DoorbellReg.DOORBELL, 7);
  r.write(DoorbellReg.DOORBELL, 8);
  r.write(DoorbellReg.DOORBELL, 9);
  await r.settle();
  // COUNT was 6: slots 2, 3 and round to 0
  assert.deepEqual(r.log(4), [[9, 8], [106, 5], [7, 6], [8, 7]]);
  assert.equal(r.read(DoorbellReg.STATUS), DoorbellStatus.DONE);
  assert.ok(r.ctx.triggers.length >= 2 && r.ctx.triggers.every((v) => v === 0));
  const lowered = r.ctx.lowered;
  r.write(DoorbellReg.STATUS, DoorbellStatus.DONE);
  assert.equal(r.read(DoorbellReg.STATUS), 0);
  assert.equal(r.ctx.lowered, lowered + 1, "clearing DONE deasserts INTx");
});

Deno.test("doorbell: an unreachable log stops it with ERROR; the jobs wait for a good one", async () => {
  const mem = new FakeGuestMemory({ size: 0x4000, holes: [{ addr: 0x3000, len: 0x1000 }] });
  const r = rig(mem);
  r.write(DoorbellReg.LOG_LO, 0x3000);
  r.write(DoorbellReg.LOG_SIZE, 8);
  r.write(DoorbellReg.CONTROL, DoorbellControl.ENABLE);
  r.write(DoorbellReg.DOORBELL, 42);
  await r.settle();
  assert.equal(r.read(DoorbellReg.STATUS), DoorbellStatus.ERROR);
  assert.equal(r.read(DoorbellReg.CONTROL), 0, "stopped");
  assert.equal(r.read(DoorbellReg.DOORBELL), 1, "the job waits");
  assert.deepEqual(r.ctx.triggers, []);
  r.setup(8);
  await r.settle();
  assert.deepEqual(r.log(1), [[42, 0]]);
  assert.equal(r.read(DoorbellReg.STATUS), DoorbellStatus.DONE, "enabling cleared ERROR");
});

Deno.test("doorbell: no bus mastering, no DMA; a full job queue drops with OVERFLOW", async () => {
  const r = rig();
  r.ctx.master = false;
  r.setup(4);
  r.write(DoorbellReg.DOORBELL, 1);
  await r.settle();
  assert.equal(r.read(DoorbellReg.COUNT), 0);
  r.write(DoorbellReg.CONTROL, 0);
  for (let i = 0; i < MAX_JOBS; i++) r.write(DoorbellReg.DOORBELL, i);
  assert.equal(r.read(DoorbellReg.STATUS) & DoorbellStatus.OVERFLOW, DoorbellStatus.OVERFLOW);
  assert.equal(r.read(DoorbellReg.DOORBELL), MAX_JOBS);
});

Deno.test("doorbell: paused, doorbells queue without DMA; the state moves them to another device", async () => {
  const a = rig();
  a.setup(16);
  a.write(DoorbellReg.SCRATCH, 77);
  a.write(DoorbellReg.DOORBELL, 1);
  await a.settle();
  await a.dev.pause();
  const before = a.mem.ram.slice();
  a.write(DoorbellReg.DOORBELL, 2);
  a.write(DoorbellReg.DOORBELL, 3);
  await new Promise((res) => setTimeout(res, 10));
  assert.deepEqual(a.mem.ram, before, "a paused device wrote guest memory");
  const state = decodeRecord(encodeRecord(a.dev.save()));
  const b = rig(a.mem);
  await b.dev.pause();
  b.dev.restore(state, DOORBELL_STATE_VERSION);
  assert.deepEqual(b.dev.save(), a.dev.save(), "the same state");
  b.dev.resume();
  await b.settle();
  assert.deepEqual(b.log(3), [[1, 0], [2, 1], [3, 2]], "each job logged once, in order");
  assert.equal(b.read(DoorbellReg.SCRATCH), 77);
  assert.equal(b.read(DoorbellReg.COUNT), 3);
});

Deno.test("doorbell: restore refuses what is not its state and changes nothing", async () => {
  const r = rig();
  r.setup(4);
  r.write(DoorbellReg.SCRATCH, 5);
  await r.dev.pause();
  const good = r.dev.save() as Record<string, unknown>;
  const bad: [string, unknown, number][] = [
    ["status bits", { ...good, status: 0x80 }, Errno.EINVAL],
    ["log size", { ...good, logSize: MAX_LOG_ENTRIES + 1 }, Errno.EINVAL],
    ["control bits", { ...good, control: 2 }, Errno.EINVAL],
    ["jobs", { ...good, jobs: new Uint8Array(3) }, Errno.EINVAL],
    ["too many jobs", { ...good, jobs: new Uint8Array(4 * MAX_JOBS + 4) }, Errno.EINVAL],
    ["unknown field", { ...good, extra: 1 }, Errno.EINVAL],
    ["missing field", Object.fromEntries(Object.entries(good).slice(1)), Errno.EINVAL],
  ];
  for (const [what, state, errno] of bad) {
    assert.throws(
      () => r.dev.restore(state, DOORBELL_STATE_VERSION),
      (e) => isErrno(e, errno),
      what,
    );
  }
  assert.throws(() => r.dev.restore(good, 2), (e) => isErrno(e, Errno.ENOTSUP));
  assert.deepEqual(r.dev.save(), good, "unchanged");
  r.dev.resume();
});

Deno.test("doorbell: reset returns to power-on state and forgets queued jobs", async () => {
  const r = rig();
  r.setup(4, false);
  r.write(DoorbellReg.DOORBELL, 1);
  r.write(DoorbellReg.SCRATCH, 1);
  await r.dev.reset();
  for (const reg of [DoorbellReg.DOORBELL, DoorbellReg.SCRATCH, DoorbellReg.LOG_SIZE]) {
    assert.equal(r.read(reg), 0);
  }
  assert.deepEqual(r.dev.guestRegions(), []);
  r.setup(4);
  assert.deepEqual(r.dev.guestRegions(), [
    { addr: BigInt(LOG), len: 32, write: true, what: "completion log" },
  ]);
});
