import assert from "node:assert/strict";
import { IrqController, IrqFlags as F, IrqIndex } from "./irqs.ts";
import { drainEventfd, EventLoop, signalEventfd } from "../sys/event_loop.ts";
import { check, closeFd, libc } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";
import { MsixState } from "../pci/msix.ts";
import { Errno, isErrno } from "../sys/errno.ts";

function eventfd(): number {
  return check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
}

/** Dup of an eventfd we can read while the controller owns the original. */
function pair(): { give: number; watch: number } {
  const give = eventfd();
  const watch = check("fcntl", libc.fcntl(give, 1030, /* F_DUPFD_CLOEXEC */ 0));
  return { give, watch };
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
  return { pci, msix, loop, irqs };
}

Deno.test("INTx: asserted once, automasked until unmask, re-fires while the line is high", () => {
  const { pci, irqs, loop } = rig();
  const fd = pair();
  irqs.set({
    flags: F.DATA_EVENTFD | F.ACTION_TRIGGER,
    index: 0,
    start: 0,
    count: 1,
    fds: [fd.give],
  });
  irqs.trigger(0);
  irqs.trigger(0);
  assert.equal(drainEventfd(fd.watch), 1n, "one signal while masked");
  assert.equal(pci.status, true);
  irqs.set({ flags: F.DATA_NONE | F.ACTION_UNMASK, index: 0, start: 0, count: 1, fds: [] });
  assert.equal(drainEventfd(fd.watch), 1n, "still asserted: signalled again on unmask");
  irqs.lowerIntx();
  irqs.set({ flags: F.DATA_NONE | F.ACTION_UNMASK, index: 0, start: 0, count: 1, fds: [] });
  assert.equal(drainEventfd(fd.watch), 0n, "line low: nothing on unmask");
  assert.equal(pci.status, false);
  irqs.closeAll();
  closeFd(fd.watch);
  loop.stop();
});

Deno.test("INTx: COMMAND.INTX_DISABLE holds the interrupt back until cleared", () => {
  const { pci, irqs, loop } = rig();
  const fd = pair();
  irqs.set({
    flags: F.DATA_EVENTFD | F.ACTION_TRIGGER,
    index: 0,
    start: 0,
    count: 1,
    fds: [fd.give],
  });
  pci.intxDisabled = true;
  irqs.trigger(0);
  assert.equal(drainEventfd(fd.watch), 0n);
  pci.intxDisabled = false;
  irqs.commandChanged();
  assert.equal(drainEventfd(fd.watch), 1n);
  irqs.closeAll();
  closeFd(fd.watch);
  loop.stop();
});

Deno.test("INTx resample eventfd unmasks (the flow QEMU uses with an irqfd)", async () => {
  const { irqs, loop } = rig();
  const fd = pair();
  const resample = pair();
  irqs.set({
    flags: F.DATA_EVENTFD | F.ACTION_TRIGGER,
    index: 0,
    start: 0,
    count: 1,
    fds: [fd.give],
  });
  irqs.set({
    flags: F.DATA_EVENTFD | F.ACTION_UNMASK,
    index: 0,
    start: 0,
    count: 1,
    fds: [resample.give],
  });
  irqs.trigger(0);
  assert.equal(drainEventfd(fd.watch), 1n);
  const running = loop.run();
  signalEventfd(resample.watch); // the guest's EOI
  for (let i = 0; i < 200 && drainEventfd(fd.watch) === 0n; i++) {
    if (i === 199) assert.fail("no re-fire after resample");
    await new Promise((r) => setTimeout(r, 5));
  }
  loop.stop();
  await running;
  irqs.closeAll();
  closeFd(fd.watch);
  closeFd(resample.watch);
});

Deno.test("MSI-X: masked vectors set PBA bits and fire on unmask; partial fd sets", () => {
  const { pci, msix, irqs, loop } = rig(3);
  pci.msixEnabled = true;
  const v0 = pair(), v2 = pair();
  // Three vectors, two fds: vector 1 has no eventfd (QEMU sends fewer fds than count).
  irqs.set({
    flags: F.DATA_EVENTFD | F.ACTION_TRIGGER,
    index: 2,
    start: 0,
    count: 1,
    fds: [v0.give],
  });
  irqs.set({
    flags: F.DATA_EVENTFD | F.ACTION_TRIGGER,
    index: 2,
    start: 2,
    count: 1,
    fds: [v2.give],
  });
  irqs.trigger(1); // no fd: nothing to signal, no crash
  irqs.set({ flags: F.DATA_NONE | F.ACTION_MASK, index: 2, start: 2, count: 1, fds: [] });
  irqs.trigger(2);
  assert.equal(drainEventfd(v2.watch), 0n);
  assert.equal(msix.isPending(2), true);
  irqs.set({ flags: F.DATA_NONE | F.ACTION_UNMASK, index: 2, start: 2, count: 1, fds: [] });
  assert.equal(drainEventfd(v2.watch), 1n);
  assert.equal(msix.isPending(2), false);
  irqs.trigger(0);
  assert.equal(drainEventfd(v0.watch), 1n);
  // disable all: fds closed, triggers go nowhere
  irqs.set({ flags: F.DATA_NONE | F.ACTION_TRIGGER, index: 2, start: 0, count: 0, fds: [] });
  irqs.trigger(0);
  assert.equal(drainEventfd(v0.watch), 0n);
  closeFd(v0.watch);
  closeFd(v2.watch);
  loop.stop();
});

Deno.test("SET_IRQS validation: bad index/range, fds without DATA_EVENTFD, fds closed on error", () => {
  const { irqs, loop } = rig(2);
  const einval = (e: unknown) => isErrno(e, Errno.EINVAL);
  assert.throws(() => irqs.set({ flags: 0x21, index: 9, start: 0, count: 1, fds: [] }), einval);
  assert.throws(() => irqs.set({ flags: 0x21, index: 2, start: 1, count: 2, fds: [] }), einval);
  const stray = eventfd();
  assert.throws(
    () => irqs.set({ flags: 0x21, index: IrqIndex.MSIX, start: 0, count: 1, fds: [stray] }),
    einval,
  );
  assert.equal(libc.fcntl(stray, 1, /* F_GETFD */ 0), -1, "the stray fd was closed");
  loop.stop();
});
