import assert from "node:assert/strict";
import { IrqController } from "./irqs.ts";
import { IrqIndex, IrqSetFlags as F } from "../protocol/irq.ts";
import { drainEventfd, EventLoop, signalEventfd } from "../sys/event_loop.ts";
import { check, closeFd, libc } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";
import { MsixState } from "../pci/msix.ts";
import { Errno, isErrno } from "../sys/errno.ts";

const { INTX, MSIX } = IrqIndex;
const EVENTFD = F.DATA_EVENTFD | F.ACTION_TRIGGER;
const MASK = F.DATA_NONE | F.ACTION_MASK;
const UNMASK = F.DATA_NONE | F.ACTION_UNMASK;

function eventfd(): number {
  return check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
}

/** An eventfd to give the controller, and a dup of it the test reads. */
interface Watched {
  give: number;
  watch: number;
}

function rig(vectors = 2) {
  const pci = { msixEnabled: false, intxDisabled: false, status: false };
  const msix = new MsixState(vectors);
  const loop = new EventLoop();
  const irqs = new IrqController(
    loop,
    {
      get msixEnabled() {
        return pci.msixEnabled;
      },
      get intxDisabled() {
        return pci.intxDisabled;
      },
      setInterruptStatus: (on) => pci.status = on,
    },
    msix,
    true,
  );
  const watched: Watched[] = [];
  /** SET_IRQS as the session passes it on. */
  const set = (index: number, flags: number, start: number, count: number, fds: number[] = []) =>
    irqs.set({ index, flags, start, count, data: new Uint8Array(0), fds });
  /** Installs a fresh eventfd for vector `start` of `index` with `flags`; returns its watch fd. */
  const install = (index: number, start: number, flags = EVENTFD): number => {
    const give = eventfd();
    const w = { give, watch: check("fcntl", libc.fcntl(give, C.F_DUPFD_CLOEXEC, 0)) };
    watched.push(w);
    set(index, flags, start, 1, [w.give]);
    return w.watch;
  };
  const done = () => {
    irqs.closeAll();
    for (const w of watched) closeFd(w.watch);
    loop.stop();
  };
  return { pci, msix, loop, irqs, set, install, done };
}

Deno.test("INTx: asserted once, automasked until unmask, re-fires while the line is high", () => {
  const { pci, irqs, set, install, done } = rig();
  const fd = install(INTX, 0);
  irqs.trigger(0);
  irqs.trigger(0);
  assert.equal(drainEventfd(fd), 1n, "one signal while masked");
  assert.equal(pci.status, true);
  set(INTX, UNMASK, 0, 1);
  assert.equal(drainEventfd(fd), 1n, "still asserted: signalled again on unmask");
  irqs.lowerIntx();
  set(INTX, UNMASK, 0, 1);
  assert.equal(drainEventfd(fd), 0n, "line low: nothing on unmask");
  assert.equal(pci.status, false);
  done();
});

Deno.test("INTx: COMMAND.INTX_DISABLE holds the interrupt back until cleared", () => {
  const { pci, irqs, install, done } = rig();
  const fd = install(INTX, 0);
  pci.intxDisabled = true;
  irqs.trigger(0);
  assert.equal(drainEventfd(fd), 0n);
  pci.intxDisabled = false;
  irqs.commandChanged();
  assert.equal(drainEventfd(fd), 1n);
  done();
});

Deno.test("INTx resample eventfd unmasks (the flow QEMU uses with an irqfd)", async () => {
  const { irqs, loop, install, done } = rig();
  const fd = install(INTX, 0);
  const resample = install(INTX, 0, F.DATA_EVENTFD | F.ACTION_UNMASK);
  irqs.trigger(0);
  assert.equal(drainEventfd(fd), 1n);
  const running = loop.run();
  signalEventfd(resample); // the guest's EOI
  for (let i = 0; i < 200 && drainEventfd(fd) === 0n; i++) {
    if (i === 199) assert.fail("no re-fire after resample");
    await new Promise((r) => setTimeout(r, 5));
  }
  loop.stop();
  await running;
  done();
});

Deno.test("INTx resample fd that hangs up is handled once, not spun on; unmask still works", async () => {
  const { irqs, loop, set, install, done } = rig();
  const fd = install(INTX, 0);
  const fds = new Int32Array(2);
  check("pipe2", libc.pipe2(new Uint8Array(fds.buffer), C.O_CLOEXEC | 0o4000));
  const [readEnd, writeEnd] = fds;
  closeFd(writeEnd); // a resample "eventfd" whose writer is gone: EPOLLHUP for ever
  // count the calls of the handler the controller installs for it
  let calls = 0;
  const add = loop.add.bind(loop);
  loop.add = (f, ev, h) =>
    add(f, ev, (e) => {
      if (f === readEnd && ++calls >= 1000) loop.stop(); // bound: the defect spins here
      h(e);
    });
  set(INTX, F.DATA_EVENTFD | F.ACTION_UNMASK, 0, 1, [readEnd]);
  irqs.trigger(0);
  assert.equal(drainEventfd(fd), 1n);
  const t = setTimeout(() => loop.stop(), 100);
  await loop.run();
  clearTimeout(t);
  assert.ok(calls <= 1, `resample handler ran ${calls} times`);
  assert.equal(loop.watches(readEnd), false);
  // the client can still unmask with SET_IRQS
  set(INTX, UNMASK, 0, 1);
  assert.equal(drainEventfd(fd), 1n, "line still high: signalled again on unmask");
  done();
});

Deno.test("MSI-X: masked vectors set PBA bits and fire on unmask; partial fd sets", () => {
  const { pci, msix, irqs, set, install, done } = rig(3);
  pci.msixEnabled = true;
  // Three vectors, two fds: vector 1 has no eventfd (QEMU sends fewer fds than count).
  const v0 = install(MSIX, 0);
  const v2 = install(MSIX, 2);
  irqs.trigger(1); // no fd: nothing to signal, no crash
  set(MSIX, MASK, 2, 1);
  irqs.trigger(2);
  assert.equal(drainEventfd(v2), 0n);
  assert.equal(msix.isPending(2), true);
  set(MSIX, UNMASK, 2, 1);
  assert.equal(drainEventfd(v2), 1n);
  assert.equal(msix.isPending(2), false);
  irqs.trigger(0);
  assert.equal(drainEventfd(v0), 1n);
  // disable all: fds closed, triggers go nowhere
  set(MSIX, F.DATA_NONE | F.ACTION_TRIGGER, 0, 0);
  irqs.trigger(0);
  assert.equal(drainEventfd(v0), 0n);
  done();
});

Deno.test("SET_IRQS validation: bad index/range, fds without DATA_EVENTFD, fds closed on error", () => {
  const { set, done } = rig(2);
  const einval = (e: unknown) => isErrno(e, Errno.EINVAL);
  const trigger = F.DATA_NONE | F.ACTION_TRIGGER;
  assert.throws(() => set(9, trigger, 0, 1), einval);
  assert.throws(() => set(MSIX, trigger, 1, 2), einval);
  const stray = eventfd();
  assert.throws(() => set(MSIX, trigger, 0, 1, [stray]), einval);
  assert.equal(libc.fcntl(stray, C.F_GETFD, 0), -1, "the stray fd was closed");
  done();
});
