/**
 * Seeded protocol fuzzing: thousands of messages with valid framing (so the stream stays in
 * sync) but random commands, flags, argsz fields, offsets, counts and payloads, some with fds
 * attached, after a real VERSION and DMA_MAP. vfud must never crash or leak fds, must answer
 * every command that asks for a reply, and must still serve a fresh client afterwards.
 * Set VFUD_FUZZ_SEED to replay a run.
 */
import assert from "node:assert/strict";
import { Command, encodeHeader, Flags } from "../../protocol/header.ts";
import { check, libc } from "../../sys/ffi.ts";
import { C } from "../../sys/layout.ts";
import { MemfdRam } from "../../client/mod.ts";
import { assertServesFreshClient, connect, countFds, EVENTFD_LINK, startVfud } from "./helpers.ts";

const SEED = Number(Deno.env.get("VFUD_FUZZ_SEED") ?? Date.now() % 1e9);
console.log(`fuzz_test: seed ${SEED} (replay with VFUD_FUZZ_SEED=${SEED})`);
/** max_data_xfer_size vfud offers. */
const MAX_XFER = 1 << 20;

/** xorshift32: small, seedable, good enough to pick test inputs. */
function rng(seed: number): () => number {
  let x = (seed >>> 0) || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

/**
 * Every command of the final spec but DEVICE_RESET, those with rich payloads (SET_IRQS and
 * region accesses) twice, and numbers that are none (14 was DIRTY_PAGES).
 */
const { DEVICE_RESET: _, ...FUZZED } = Command;
const CMDS: number[] = [
  ...Object.values(FUZZED),
  Command.DEVICE_SET_IRQS,
  Command.REGION_READ,
  Command.REGION_WRITE,
  14,
  0,
  77,
];

/** A payload that often looks plausible: small little-endian fields, sometimes pure noise. */
function payload(r: () => number, cmd: number): Uint8Array {
  const len = r() < 0.1 ? Math.floor(r() * 600) : [0, 8, 16, 20, 24, 32, 36, 40][
    Math.floor(r() * 8)
  ];
  const p = new Uint8Array(len);
  const v = new DataView(p.buffer);
  for (let off = 0; off + 4 <= len; off += 4) {
    const pick = r();
    // argsz-like, index-like, offset-like or random words
    const word = pick < 0.3
      ? len
      : pick < 0.6
      ? Math.floor(r() * 10)
      : pick < 0.8
      ? Math.floor(r() * 0x4000)
      : Math.floor(r() * 0x1_0000_0000);
    v.setUint32(off, word >>> 0, true);
  }
  if ((cmd === Command.REGION_READ || cmd === Command.REGION_WRITE) && len >= 16) {
    // Aim region accesses at real regions (config space, virtio BARs) to reach device code.
    v.setBigUint64(0, BigInt(Math.floor(r() * 0x4100)), true);
    v.setUint32(8, [1, 4, 7, 7, 7, 0, 9][Math.floor(r() * 7)], true);
    // Counts up to and past the transfer limits: max_data_xfer_size (1 MiB), the largest region.
    const counts = [1, 2, 4, 8, 3, 0, 64, 16384, 16385, MAX_XFER, MAX_XFER + 1, 0xffff_ffff];
    v.setUint32(12, counts[Math.floor(r() * counts.length)], true);
  }
  return p;
}

Deno.test(`fuzz: random commands with valid framing never crash vfud (seed ${SEED})`, async () => {
  await using v = await startVfud();
  const r = rng(SEED);
  const eventfdsBefore = countFds(v.pid, EVENTFD_LINK);
  {
    await using c = await connect(v);
    const ram = new MemfdRam(1 << 20);
    try {
      await c.mapRam(ram);
      const want: number[] = [];
      for (let i = 0; i < 3000; i++) {
        const cmd = CMDS[Math.floor(r() * CMDS.length)];
        const body = payload(r, cmd);
        const noReply = r() < 0.2;
        const msg = new Uint8Array(16 + body.length);
        const id = 10_000 + i;
        encodeHeader({
          id,
          cmd,
          size: msg.length,
          flags: (noReply ? Flags.NO_REPLY : 0) | (r() < 0.02 ? 3 : 0),
          error: 0,
        }, msg);
        msg.set(body, 16);
        const fds = r() < 0.05
          ? [check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK))]
          : [];
        if (!noReply && (msg[8] & 0xf) === 0) want.push(id);
        await c.sendRaw(msg, fds);
        for (const fd of fds) libc.close(fd);
        if (i % 500 === 499) await c.getInfo(); // the session keeps answering in between
      }
      // Every command that asked for a reply got one (success or error), in order.
      const info = await c.getInfo();
      assert.ok(info.numRegions >= 9);
      assert.ok(!v.exited, `vfud died (seed ${SEED}):\n${v.log()}`);
      assert.ok(want.length > 1000);
      const replied = new Set(
        c.unsolicited.filter((m) => (m.header.flags & 0xf) === Flags.TYPE_REPLY).map((m) =>
          m.header.id
        ),
      );
      const missing = want.filter((id) => !replied.has(id));
      assert.deepEqual(missing, [], `commands without a reply (seed ${SEED})`);
    } finally {
      ram.close();
    }
  }
  await assertServesFreshClient(v);
  // The session's eventfds (SET_IRQS may have installed some) are gone with it.
  assert.ok(countFds(v.pid, EVENTFD_LINK) <= eventfdsBefore, "eventfds leaked");
});
