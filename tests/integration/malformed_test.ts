/**
 * Malformed and hostile input. After each case: the daemon still serves a brand-new client,
 * and where the protocol lets the session survive, the same session still works.
 */
import assert from "node:assert/strict";
import { Command, Flags } from "../../protocol/header.ts";
import { DmaMap } from "../../protocol/dma.ts";
import { DeviceGetInfo } from "../../protocol/device_info.ts";
import { DeviceGetRegionInfo } from "../../protocol/region_info.ts";
import { DeviceGetIrqInfo, DeviceSetIrqs, IrqIndex, IrqSetFlags } from "../../protocol/irq.ts";
import { RegionRead, RegionWrite } from "../../protocol/region_rw.ts";
import { DEFAULT_SESSION_OPTIONS } from "../../server/server.ts";
import { type ClientMessage, Errno, EventFd, MemfdRam, VfioUserClient } from "../../client/mod.ts";
import {
  assertErrno,
  assertErrorReply,
  assertServesFreshClient,
  connect,
  countFds,
  EVENTFD_LINK,
  MEMFD_LINK,
  startVfud,
  type Vfud,
} from "./helpers.ts";

const { DATA_NONE, DATA_BOOL, DATA_EVENTFD, ACTION_MASK, ACTION_TRIGGER } = IrqSetFlags;
const { INTX, MSIX } = IrqIndex;
/** SET_IRQS that disables INTx triggering: a valid request to damage. */
const TRIGGER_NONE = DeviceSetIrqs.encodeRequest({
  flags: DATA_NONE | ACTION_TRIGGER,
  index: INTX,
  start: 0,
  count: 0,
  data: new Uint8Array(0),
});

/** A message with any header fields; `size` defaults to the true size. */
function raw(
  h: { id: number; cmd: number; flags?: number; size?: number; error?: number },
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(16 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, h.id, true);
  v.setUint16(2, h.cmd, true);
  v.setUint32(4, h.size ?? out.length, true);
  v.setUint32(8, h.flags ?? 0, true);
  v.setUint32(12, h.error ?? 0, true);
  out.set(payload, 16);
  return out;
}

/** A payload with a different argsz in its first u32. */
function withArgsz(payload: Uint8Array, argsz: number): Uint8Array {
  const p = payload.slice();
  new DataView(p.buffer).setUint32(0, argsz, true);
  return p;
}

/** The session is usable: a request gets its reply and the server broke no rule. */
async function assertSessionWorks(c: VfioUserClient): Promise<void> {
  const info = await c.getInfo();
  assert.ok(info.numRegions >= 9);
  assert.deepEqual(c.violations, []);
}

/** Runs `body` on a negotiated client, then proves the daemon serves a fresh client. */
/** Runs `body` with a fresh client, closes it, then checks that vfud serves the next one. */
async function withClient(
  v: Vfud,
  body: (c: VfioUserClient) => Promise<void>,
  opts: Parameters<typeof connect>[1] = {},
): Promise<void> {
  const c = await connect(v, opts);
  try {
    await body(c);
  } finally {
    await c.close();
  }
  await assertServesFreshClient(v);
}

Deno.test("malformed: a short header, then close", async () => {
  await using vfud = await startVfud();
  for (const n of [1, 8, 15]) {
    const c = await connect(vfud, { version: false });
    await c.sendRaw(raw({ id: 1, cmd: Command.VERSION }).subarray(0, n));
    await c.close();
    await assertServesFreshClient(vfud);
  }
  // The same after negotiation, and a header whose payload never comes.
  const c = await connect(vfud);
  await c.sendRaw(raw({ id: 9, cmd: Command.DEVICE_GET_INFO, size: 32 }));
  await c.close();
  await assertServesFreshClient(vfud);
});

Deno.test("malformed: size above the server's limit is refused with E2BIG, stream stays in sync", async () => {
  await using vfud = await startVfud();
  const limit = DEFAULT_SESSION_OPTIONS.maxMessageSize;
  await withClient(vfud, async (c) => {
    // A whole oversized message: E2BIG for its id, its bytes skipped, the next command served.
    const big = raw({ id: 0x4001, cmd: Command.REGION_WRITE }, new Uint8Array(limit + 16 - 16));
    assert.equal(big.length, limit + 16);
    await assertErrno(c.rawRequest(big), Errno.E2BIG, "oversized REGION_WRITE");
    await assertSessionWorks(c);
    // With an fd attached: refused too, and the fd is not kept.
    const ev = new EventFd();
    try {
      const before = countFds(vfud.pid, EVENTFD_LINK);
      const big2 = raw({ id: 0x4002, cmd: Command.DEVICE_GET_INFO }, new Uint8Array(limit));
      await assertErrorReply(c.rawRequest(big2, [ev.fd]), "oversized GET_INFO with an fd");
      await assertSessionWorks(c);
      assert.equal(countFds(vfud.pid, EVENTFD_LINK), before, "fd of a dropped message closed");
    } finally {
      ev.close();
    }
  });
  // A size no one will ever send in full: refused at once; the client gives up.
  await withClient(vfud, async (c) => {
    await assertErrno(
      c.rawRequest(
        raw({ id: 0x4003, cmd: Command.DEVICE_GET_INFO, size: 0xffff_fff0 }, new Uint8Array(16)),
      ),
      Errno.E2BIG,
      "4 GiB message",
    );
  });
});

Deno.test("malformed: size below 16 ends the connection (framing lost)", async () => {
  await using vfud = await startVfud();
  for (const size of [0, 8, 15]) {
    await withClient(vfud, async (c) => {
      await c.sendRaw(raw({ id: 0x4100, cmd: Command.DEVICE_GET_INFO, size }, new Uint8Array(16)));
      // The server drops the connection; a command sent after it gets no reply.
      const after = await c.getInfo().then(() => "replied", (e) => e.name);
      assert.equal(after, "ClientClosedError", `size ${size}`);
      assert.ok(c.isClosed);
    });
  }
});

Deno.test("malformed: size below 16 at the head of a message larger than the socket buffers ends the connection mid-write", async () => {
  // The fuzzer's REGION_WRITE of 1 MiB with size field 15: vfud closes on the header while the
  // client still writes the rest. The write meets EPIPE before the client's loop reads the end
  // of stream; that is the server ending the session, so the raw send ends as a closed client
  // (it used to escape as a bare sendmsg error, which the fuzzer counted as a hang).
  await using vfud = await startVfud();
  await withClient(vfud, async (c) => {
    const big = raw({ id: 0x4101, cmd: Command.REGION_WRITE, size: 15 }, new Uint8Array(8 << 20));
    const e = await c.sendRaw(big).then(() => undefined, (e) => e);
    assert.equal(e?.name, "ClientClosedError", String(e));
    assert.ok(c.isClosed);
  });
  assert.match(vfud.log(), /message size 15 < 16/);
});

Deno.test("malformed: bad argsz and payload sizes get error replies; the session goes on", async () => {
  await using vfud = await startVfud();
  await withClient(vfud, async (c) => {
    const cases: [string, number, Uint8Array][] = [
      [
        "GET_INFO argsz 8",
        Command.DEVICE_GET_INFO,
        withArgsz(DeviceGetInfo.encodeRequest({ argsz: 16 }), 8),
      ],
      [
        "GET_INFO argsz 0",
        Command.DEVICE_GET_INFO,
        withArgsz(DeviceGetInfo.encodeRequest({ argsz: 16 }), 0),
      ],
      ["GET_INFO short payload", Command.DEVICE_GET_INFO, new Uint8Array(12).fill(0)],
      [
        "GET_REGION_INFO argsz 16",
        Command.DEVICE_GET_REGION_INFO,
        withArgsz(DeviceGetRegionInfo.encodeRequest({ argsz: 32, index: 7 }), 16),
      ],
      [
        "GET_REGION_INFO long payload",
        Command.DEVICE_GET_REGION_INFO,
        (() => {
          const p = new Uint8Array(40);
          p.set(DeviceGetRegionInfo.encodeRequest({ argsz: 32, index: 7 }));
          return p;
        })(),
      ],
      [
        "GET_IRQ_INFO argsz 4",
        Command.DEVICE_GET_IRQ_INFO,
        withArgsz(DeviceGetIrqInfo.encodeRequest({ argsz: 16, index: 2 }), 4),
      ],
      [
        "DMA_MAP argsz 16",
        Command.DMA_MAP,
        withArgsz(DmaMap.encodeRequest({ flags: 3, offset: 0n, address: 0n, size: 4096n }), 16),
      ],
      [
        "DMA_MAP argsz 0xffffffff",
        Command.DMA_MAP,
        withArgsz(
          DmaMap.encodeRequest({ flags: 3, offset: 0n, address: 0n, size: 4096n }),
          0xffff_ffff,
        ),
      ],
      ["DMA_MAP short payload", Command.DMA_MAP, new Uint8Array(24)],
      ["DMA_UNMAP argsz 8", Command.DMA_UNMAP, withArgsz(new Uint8Array(24), 8)],
      [
        "SET_IRQS argsz > payload",
        Command.DEVICE_SET_IRQS,
        withArgsz(
          TRIGGER_NONE,
          24,
        ),
      ],
      [
        "SET_IRQS argsz < 20",
        Command.DEVICE_SET_IRQS,
        withArgsz(
          TRIGGER_NONE,
          12,
        ),
      ],
      [
        "SET_IRQS DATA_BOOL without the bools",
        Command.DEVICE_SET_IRQS,
        DeviceSetIrqs.encodeRequest({
          flags: DATA_BOOL | ACTION_MASK,
          index: MSIX,
          start: 0,
          count: 2,
          data: new Uint8Array(0),
        }),
      ],
      ["REGION_READ short payload", Command.REGION_READ, new Uint8Array(12)],
      [
        "REGION_WRITE count > data",
        Command.REGION_WRITE,
        (() => {
          const p = RegionWrite.encodeRequest({ offset: 0n, region: 7, data: new Uint8Array(4) });
          new DataView(p.buffer).setUint32(12, 8, true);
          return p;
        })(),
      ],
      ["DEVICE_RESET with a payload", Command.DEVICE_RESET, new Uint8Array(8)],
    ];
    for (const [what, cmd, payload] of cases) {
      const errno = await assertErrorReply(c.request(cmd, payload, { maxReplySize: 16 }), what);
      assert.ok(errno > 0, `${what}: errno ${errno}`);
    }
    await assertSessionWorks(c);
  });
});

Deno.test("malformed: unknown commands get an error reply; the session goes on", async () => {
  await using vfud = await startVfud();
  await withClient(vfud, async (c) => {
    for (const cmd of [14, 99, 0, 19, 0xffff]) {
      await assertErrorReply(c.request(cmd, new Uint8Array(8)), `command ${cmd}`);
    }
    // Server-to-client commands sent by the client are not served either.
    await assertErrorReply(
      c.request(Command.DMA_READ, new Uint8Array(16)),
      "DMA_READ from the client",
    );
    await assertErrorReply(
      c.request(Command.DMA_WRITE, new Uint8Array(17)),
      "DMA_WRITE from the client",
    );
    await assertSessionWorks(c);
  });
});

Deno.test("malformed: region and IRQ indexes or offsets out of range get error replies", async () => {
  await using vfud = await startVfud();
  await withClient(vfud, async (c) => {
    const reads: [string, number, bigint, number][] = [
      ["region 9", 9, 0n, 4],
      ["region 100", 100, 0n, 4],
      ["region 0xffffffff", 0xffff_ffff, 0n, 4],
      ["ROM (size 0)", 6, 0n, 4],
      ["BAR0 (not implemented)", 0, 0n, 4],
      ["VGA", 8, 0n, 4],
      ["config offset 256", 7, 256n, 1],
      ["config crossing the end", 7, 255n, 2],
      ["config offset 2^63", 7, 1n << 63n, 4],
      ["BAR4 offset 16 KiB", 4, 0x4000n, 4],
      ["BAR4 crossing the end", 4, 0x3ffen, 4],
      ["BAR1 offset 2^53", 1, 1n << 53n, 4],
      ["config count 0", 7, 0n, 0],
    ];
    for (const [what, region, offset, count] of reads) {
      await assertErrorReply(
        c.request(Command.REGION_READ, RegionRead.encodeRequest({ offset, region, count }), {
          maxReplySize: 16,
        }),
        `REGION_READ ${what}`,
      );
      await assertErrorReply(
        c.request(
          Command.REGION_WRITE,
          RegionWrite.encodeRequest({ offset, region, data: new Uint8Array(count) }),
          {
            maxReplySize: 32,
          },
        ),
        `REGION_WRITE ${what}`,
      );
    }
    await assertErrorReply(
      c.request(
        Command.REGION_READ,
        RegionRead.encodeRequest({ offset: 0n, region: 4, count: 2 << 20 }),
      ),
      "REGION_READ above max_data_xfer_size",
    );
    for (const index of [9, 1000]) {
      await assertErrorReply(c.getRegionInfo(index), `GET_REGION_INFO ${index}`);
    }
    await assertErrorReply(c.getIrqInfo(5), "GET_IRQ_INFO 5");
    await assertErrorReply(
      c.setIrqs({ index: 7, flags: DATA_NONE | ACTION_TRIGGER, start: 0, count: 0 }),
      "SET_IRQS index 7",
    );
    await assertErrorReply(
      c.setIrqs({ index: MSIX, flags: DATA_NONE | ACTION_MASK, start: 2, count: 1 }),
      "SET_IRQS vector 2 of 2",
    );
    await assertErrorReply(
      c.setIrqs({ index: INTX, flags: DATA_NONE | ACTION_MASK, start: 0, count: 2 }),
      "SET_IRQS INTx count 2",
    );
    await assertErrorReply(
      c.setIrqs({ index: MSIX, flags: DATA_NONE | DATA_BOOL | ACTION_TRIGGER, start: 0, count: 1 }),
      "two DATA bits",
    );
    await assertErrorReply(
      c.writeMulti([{ region: 9, offset: 0n, data: new Uint8Array(4) }]),
      "WRITE_MULTI region 9",
    );
    await assertSessionWorks(c);
  });
});

Deno.test("malformed: fds on messages that take none get an error reply and are not leaked", async () => {
  await using vfud = await startVfud();
  await withClient(vfud, async (c) => {
    const evs = [new EventFd(), new EventFd(), new EventFd()];
    const mem = new MemfdRam(4096);
    try {
      const eventfdsBefore = countFds(vfud.pid, EVENTFD_LINK);
      const memfdsBefore = countFds(vfud.pid, MEMFD_LINK);
      const allBefore = countFds(vfud.pid);
      const fds = evs.map((e) => e.fd);
      await assertErrorReply(
        c.request(Command.DEVICE_GET_INFO, DeviceGetInfo.encodeRequest({ argsz: 16 }), { fds }),
        "GET_INFO + 3 eventfds",
      );
      await assertErrorReply(
        c.request(
          Command.REGION_READ,
          RegionRead.encodeRequest({ offset: 0n, region: 7, count: 4 }),
          { fds: [mem.fd!] },
        ),
        "REGION_READ + memfd",
      );
      await assertErrorReply(
        c.request(
          Command.DEVICE_GET_REGION_INFO,
          DeviceGetRegionInfo.encodeRequest({ argsz: 32, index: 7 }),
          { fds },
        ),
        "GET_REGION_INFO + eventfds",
      );
      await assertErrorReply(
        c.request(Command.DMA_UNMAP, new Uint8Array(24), { fds: [mem.fd!] }),
        "DMA_UNMAP + memfd",
      );
      await assertErrorReply(
        c.request(Command.DEVICE_RESET, new Uint8Array(0), { fds }),
        "RESET + eventfds",
      );
      await assertErrorReply(
        c.setIrqs({ index: MSIX, flags: DATA_NONE | ACTION_TRIGGER, start: 0, count: 0, fds }),
        "SET_IRQS DATA_NONE + fds",
      );
      await assertErrorReply(
        c.setIrqs({ index: MSIX, flags: DATA_EVENTFD | ACTION_TRIGGER, start: 0, count: 1, fds }),
        "SET_IRQS 3 fds for 1 vector",
      );
      await assertErrorReply(c.request(99, new Uint8Array(4), { fds }), "unknown command + fds");
      // Posted (NO_REPLY) with fds: no reply, still closed.
      c.post(Command.DEVICE_GET_INFO, DeviceGetInfo.encodeRequest({ argsz: 16 }), { fds });
      await assertSessionWorks(c);
      assert.equal(countFds(vfud.pid, EVENTFD_LINK), eventfdsBefore, "no eventfd kept");
      assert.equal(countFds(vfud.pid, MEMFD_LINK), memfdsBefore, "no memfd kept");
      assert.equal(countFds(vfud.pid), allBefore, "fd table unchanged");
      // Installed eventfds are held, replaced ones closed, and SET_IRQS disable releases them.
      await c.setIrqs({
        index: MSIX,
        flags: DATA_EVENTFD | ACTION_TRIGGER,
        start: 0,
        count: 2,
        fds: [evs[0].fd, evs[1].fd],
      });
      assert.equal(countFds(vfud.pid, EVENTFD_LINK), eventfdsBefore + 2);
      await c.setIrqs({
        index: MSIX,
        flags: DATA_EVENTFD | ACTION_TRIGGER,
        start: 0,
        count: 2,
        fds: [evs[2].fd],
      });
      assert.equal(
        countFds(vfud.pid, EVENTFD_LINK),
        eventfdsBefore + 1,
        "count 2 with one fd: vector 1 de-assigned",
      );
      await c.setIrqs({ index: MSIX, flags: DATA_NONE | ACTION_TRIGGER, start: 0, count: 0 });
      assert.equal(countFds(vfud.pid, EVENTFD_LINK), eventfdsBefore);
    } finally {
      evs.forEach((e) => e.close());
      mem.close();
    }
  });
});

Deno.test("malformed: commands before VERSION are refused; VERSION problems", async () => {
  await using vfud = await startVfud();
  await withClient(vfud, async (c) => {
    await assertErrorReply(c.getInfo(), "GET_INFO before VERSION");
    await assertErrorReply(c.dmaMap({ iova: 0n, size: 4096n }), "DMA_MAP before VERSION");
    await assertErrorReply(c.regionRead(7, 0, 4), "REGION_READ before VERSION");
    // Broken VERSION payloads: refused, and negotiation can still happen afterwards.
    await assertErrorReply(c.version('{"capabilities": {}}', { major: 1 }), "major 1");
    await assertErrorReply(
      c.request(Command.VERSION, new TextEncoder().encode("\0\0\0\0{}")),
      "JSON without NUL",
    );
    await assertErrorReply(c.version('{"capabilities": '), "truncated JSON");
    await assertErrorReply(
      c.version('{"capabilities": {"max_msg_fds": "many"}}'),
      "ill-typed capability",
    );
    await assertErrorReply(c.request(Command.VERSION, new Uint8Array(2)), "2-byte VERSION");
    const v = await c.version();
    assert.equal(v.major, 0);
    await assertErrorReply(c.version(), "VERSION twice");
    await assertSessionWorks(c);
  }, { version: false });
});

Deno.test("malformed: a failing NO_REPLY command produces no reply at all", async () => {
  await using vfud = await startVfud();
  await withClient(vfud, async (c) => {
    const seen: ClientMessage[] = [];
    const tap = c.nextMessage({ filter: (m) => (seen.push(m), false), timeoutMs: 60_000 }).catch(
      () => {},
    );
    c.post(
      Command.DEVICE_GET_REGION_INFO,
      DeviceGetRegionInfo.encodeRequest({ argsz: 32, index: 99 }),
    );
    c.post(
      Command.REGION_WRITE,
      RegionWrite.encodeRequest({ offset: 0x10000n, region: 4, data: new Uint8Array(4) }),
    );
    c.post(77, new Uint8Array(0));
    const posted = c.post(
      Command.REGION_WRITE,
      RegionWrite.encodeRequest({ offset: 0n, region: 7, data: new Uint8Array(2) }),
    );
    const info = await c.getInfo();
    assert.ok(info.numRegions >= 9);
    assert.equal(
      seen.length,
      1,
      `only the GET_INFO reply arrived: ${seen.map((m) => m.header.id)}`,
    );
    assert.notEqual(seen[0].header.id, posted);
    assert.deepEqual(c.unsolicited, []);
    await c.close(); // ends the tap
    await tap;
  });
});

Deno.test("malformed: replies with unknown ids and messages of unknown type", async () => {
  await using vfud = await startVfud();
  await withClient(vfud, async (c) => {
    await c.sendRaw(
      raw({ id: 0x7777, cmd: Command.DMA_READ, flags: Flags.TYPE_REPLY }, new Uint8Array(20)),
    );
    await c.sendRaw(
      raw({
        id: 0x7778,
        cmd: Command.DMA_WRITE,
        flags: Flags.TYPE_REPLY | Flags.ERROR,
        error: Errno.EIO,
      }),
    );
    await c.sendRaw(raw({ id: 0x7779, cmd: 99, flags: Flags.TYPE_REPLY }, new Uint8Array(3)));
    await assertSessionWorks(c);
    assert.deepEqual(c.unsolicited, [], "nothing answers a reply");
    // Type 2 is neither command nor reply: refused or the connection dropped, never served.
    const r = await c.rawRequest(
      raw(
        { id: 0x7780, cmd: Command.DEVICE_GET_INFO, flags: 2 },
        DeviceGetInfo.encodeRequest({ argsz: 16 }),
      ),
    )
      .then(() => "served", (e) => e.name);
    assert.notEqual(r, "served", "a message of type 2 must not be served as a command");
    if (r === "VfioUserRequestError") await assertSessionWorks(c);
  });
});
