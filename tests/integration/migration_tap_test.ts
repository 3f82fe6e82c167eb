/**
 * Live migration of an e1000 on a tap interface: migration_tap_probe.ts runs in a private
 * network namespace (two vfud processes, two taps on a bridge, the kernel's UDP sockets as the
 * far end) and reports what each side received; this judges it.
 */
import assert from "node:assert/strict";
import { runInNetns } from "../netns.ts";
import { seqRange } from "./stream_hub.ts";

Deno.test("migration: e1000 on a tap moves to a second vfud, datagrams before, during and after", async () => {
  const probe = new URL("./migration_tap_probe.ts", import.meta.url).pathname;
  const r = await runInNetns<{
    states: number[];
    sent: number;
    fromGuest: number[];
    toGuest: number;
    received: number[];
    burst: number[];
    blackout: number[];
  }>(probe, 120_000);
  assert.deepEqual(r.states, [1, 2], "source STOP, destination RUNNING");
  // Guest -> host: every transmit descriptor's datagram exactly once, in order, whichever
  // vfud sent it.
  assert.deepEqual(r.fromGuest, seqRange(0, r.sent));
  // Host -> guest: in order, never twice. Missing only: datagrams sent to the stopped source,
  // and a tail of the burst still queued in its tap (never read by it); the ones that waited
  // in its NIC came out of the destination.
  const received: number[] = r.received;
  assert.deepEqual(received, [...new Set(received)].sort((a, b) => a - b), "in order, no dups");
  const burst: number[] = r.burst;
  const lost = seqRange(0, r.toGuest).filter((s) => !received.includes(s));
  const burstGot = burst.filter((s) => received.includes(s));
  assert.ok(burstGot.length >= 1, "the frame waiting in the source NIC was delivered");
  assert.deepEqual(burstGot, burst.slice(0, burstGot.length), "a prefix of the burst");
  assert.deepEqual(
    lost,
    [...burst.slice(burstGot.length), ...r.blackout],
    "nothing else lost",
  );
});
