import assert from "node:assert/strict";
import { Errno, ErrnoError } from "../sys/errno.ts";
import type { RecordValue } from "../protocol/record.ts";
import { concatBytes } from "../protocol/wire.ts";
import { MigrationController, type MigrationTarget } from "./controller.ts";
import { DeviceState } from "./states.ts";
import { decodeStream, SectionId } from "./stream.ts";

const { ERROR, STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY } = DeviceState;

class FakeTarget implements MigrationTarget {
  readonly deviceType = "fake";
  readonly stateVersion = 1;
  log: string[] = [];
  config = 1;
  device = 10;
  restored: Map<number, RecordValue> | undefined;
  failRestore: Error | undefined;
  pauses = 0;
  pause(): Promise<void> {
    this.pauses++;
    this.log.push("pause");
    return Promise.resolve();
  }
  resume(): void {
    this.pauses--;
    this.log.push("resume");
  }
  saveEarly() {
    return [{ id: SectionId.PCI_CONFIG, data: this.config }];
  }
  save() {
    this.log.push("save");
    return [...this.saveEarly(), { id: SectionId.DEVICE, data: this.device }];
  }
  restore(sections: ReadonlyMap<number, RecordValue>): Promise<void> {
    this.log.push("restore");
    if (this.failRestore) return Promise.reject(this.failRestore);
    this.restored = new Map(sections);
    return Promise.resolve();
  }
}

const EXPECT = { deviceType: "fake", maxStateVersion: 1 };

function readAll(c: MigrationController, chunk = 7): Uint8Array {
  const parts: Uint8Array[] = [];
  for (;;) {
    const b = c.read(chunk);
    parts.push(b);
    if (b.length < chunk) break;
  }
  return concatBytes(parts);
}

/** The whole stream of a fresh source in STOP_COPY: what a destination loads. */
async function savedStream(): Promise<Uint8Array> {
  const src = new MigrationController(new FakeTarget());
  await src.set(STOP_COPY);
  return readAll(src);
}

async function refusedWith(p: Promise<unknown> | (() => unknown), errno: number): Promise<void> {
  const e = await (typeof p === "function" ? Promise.resolve().then(p) : p).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(e instanceof ErrnoError, `expected errno ${errno}, got ${e}`);
  assert.equal(e.errno, errno, e.message);
}

Deno.test("controller: arcs run their actions in path order", async () => {
  const t = new FakeTarget();
  const c = new MigrationController(t);
  await c.set(STOP_COPY); // RUNNING -> STOP -> STOP_COPY
  assert.deepEqual(t.log, ["pause", "save"]);
  assert.equal(c.state, STOP_COPY);
  await c.set(RUNNING); // STOP_COPY -> STOP -> RUNNING
  assert.deepEqual(t.log, ["pause", "save", "resume"]);
  assert.equal(t.pauses, 0);
  await c.set(RESUMING); // RUNNING -> STOP -> RESUMING
  assert.equal(c.state, RESUMING);
  assert.equal(t.pauses, 1);
  await c.set(RESUMING); // same state: nothing
  assert.deepEqual(t.log, ["pause", "save", "resume", "pause"]);
});

Deno.test("controller: refused transitions leave the state unchanged", async () => {
  const c = new MigrationController(new FakeTarget());
  await c.set(STOP_COPY);
  await refusedWith(c.set(PRE_COPY), Errno.EINVAL);
  await refusedWith(c.set(ERROR), Errno.EINVAL);
  await refusedWith(c.set(5), Errno.EINVAL);
  assert.equal(c.state, STOP_COPY);
});

Deno.test("controller: stop-and-copy stream, short read ends it", async () => {
  const t = new FakeTarget();
  const c = new MigrationController(t);
  await refusedWith(() => c.read(8), Errno.EINVAL);
  await c.set(STOP_COPY);
  const stream = readAll(c);
  assert.equal(c.read(100).length, 0, "nothing after the end");
  const d = decodeStream(stream, EXPECT);
  assert.deepEqual([...d.sections], [[SectionId.PCI_CONFIG, 1], [SectionId.DEVICE, 10]]);
});

Deno.test("controller: pre-copy sends early what it can, stop-copy only what changed", async () => {
  const t = new FakeTarget();
  const c = new MigrationController(t);
  await c.set(PRE_COPY);
  assert.equal(t.pauses, 0, "the device runs during pre-copy");
  const early = readAll(c, 1000);
  assert.ok(early.length > 0);
  assert.equal(c.read(1000).length, 0, "nothing new while nothing changed");
  t.config = 2; // the guest changed something
  const again = readAll(c, 1000);
  assert.ok(again.length > 0);
  await c.set(STOP_COPY);
  assert.equal(t.pauses, 1);
  const last = readAll(c, 5);
  const all = new Uint8Array(early.length + again.length + last.length);
  all.set(early);
  all.set(again, early.length);
  all.set(last, early.length + again.length);
  const d = decodeStream(all, EXPECT);
  assert.deepEqual([...d.sections], [[SectionId.PCI_CONFIG, 2], [SectionId.DEVICE, 10]]);
  // The final frame carries only the device section: config 2 had been sent already.
  assert.throws(() => decodeStream(early, EXPECT), /no final frame/);
  const onlyLast = decodeStream(last, EXPECT);
  assert.deepEqual([...onlyLast.sections], [[SectionId.DEVICE, 10]]);
});

Deno.test("controller: the destination loads on RESUMING -> STOP", async () => {
  const stream = await savedStream();
  const t = new FakeTarget();
  const c = new MigrationController(t);
  await refusedWith(() => c.write(stream), Errno.EINVAL);
  await c.set(RESUMING);
  for (let i = 0; i < stream.length; i += 5) c.write(stream.subarray(i, i + 5));
  await c.set(RUNNING); // RESUMING -> STOP (load) -> RUNNING
  assert.deepEqual([...t.restored!], [[SectionId.PCI_CONFIG, 1], [SectionId.DEVICE, 10]]);
  assert.deepEqual(t.log, ["pause", "restore", "resume"]);
});

Deno.test("controller: a refused stream keeps RESUMING and drops the bytes", async () => {
  const stream = await savedStream();
  const t = new FakeTarget();
  const c = new MigrationController(t);
  await c.set(RESUMING);
  c.write(stream.subarray(0, stream.length - 1));
  await refusedWith(c.set(STOP), Errno.EINVAL);
  assert.equal(c.state, RESUMING);
  c.write(stream); // starts over
  t.failRestore = new ErrnoError(Errno.EFAULT, "ring not mapped");
  await refusedWith(c.set(STOP), Errno.EFAULT);
  assert.equal(c.state, RESUMING);
  t.failRestore = undefined;
  c.write(stream);
  await c.set(STOP);
  assert.equal(c.state, STOP);
});

Deno.test("controller: incoming data is bounded", async () => {
  const c = new MigrationController(new FakeTarget(), { maxIncoming: 10 });
  await c.set(RESUMING);
  c.write(new Uint8Array(10));
  await refusedWith(() => c.write(new Uint8Array(1)), Errno.E2BIG);
});

Deno.test("controller: a failure without errno is ERROR, left only by reset", async () => {
  const t = new FakeTarget();
  const c = new MigrationController(t);
  t.save = () => {
    throw new Error("bug");
  };
  await assert.rejects(c.set(STOP_COPY), /bug/);
  assert.equal(c.state, ERROR);
  for (const s of [STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY]) {
    await refusedWith(c.set(s), Errno.EINVAL);
  }
  assert.equal(c.reset(), true, "the reset owner ends the pause the machine held");
  assert.equal(c.state, RUNNING);
  assert.equal(c.reset(), false);
});

Deno.test("controller: a client that leaves abandons the transfer", async () => {
  const c = new MigrationController(new FakeTarget());
  await c.set(PRE_COPY);
  c.clientGone();
  assert.equal(c.state, RUNNING);
  await c.set(STOP_COPY);
  c.clientGone();
  assert.equal(c.state, STOP);
  assert.equal(c.holdsPause, true);
  await c.set(STOP_COPY);
  assert.ok(c.read(4096).length > 0, "a new stream starts from scratch");
});

Deno.test("controller: a client that leaves during a state change is handled when it ends", async () => {
  const t = new FakeTarget();
  let release!: () => void;
  t.pause = () => {
    t.pauses++;
    return new Promise<void>((r) => (release = r));
  };
  const c = new MigrationController(t);
  await c.set(PRE_COPY);
  const pending = c.set(STOP_COPY); // PRE_COPY -> STOP_COPY: pauses, then saves
  c.clientGone();
  assert.equal(c.state, PRE_COPY, "nothing changes under the running transition");
  release();
  await pending;
  assert.equal(c.state, STOP, "then the transfer is abandoned: STOP_COPY -> STOP");
  assert.equal(c.holdsPause, true);
});
