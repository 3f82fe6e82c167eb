/**
 * Live migration of an e1000 on a tap interface: migration_tap_probe.ts runs in a private
 * network namespace (two vfud processes, two taps on a bridge, the kernel's UDP sockets as the
 * far end) and reports what each side received; this judges it.
 */
import assert from "node:assert/strict";

/** The probe needs a private network namespace (root or user namespaces) and /dev/net/tun. */
async function canUseNetns(): Promise<boolean> {
  try {
    Deno.statSync("/dev/net/tun");
    const out = await new Deno.Command("unshare", {
      args: ["--net", "ip", "link", "show", "lo"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

Deno.test("migration: e1000 on a tap moves to a second vfud, datagrams before, during and after", async () => {
  // A missing prerequisite is a failure, not a silent skip (CI runs as root).
  assert.ok(
    await canUseNetns(),
    "needs /dev/net/tun and `unshare --net` (root or user namespaces)",
  );
  const probe = new URL("./migration_tap_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command("unshare", {
    args: ["--net", Deno.execPath(), "run", "--allow-all", probe],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  const err = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `probe failed (${out.code}): ${text}\n${err}`);
  const r = JSON.parse(text.split("\n").at(-1)!);
  assert.deepEqual(r.states, [1, 2], "source STOP, destination RUNNING");
  // Guest -> host: every transmit descriptor's datagram exactly once, in order, whichever
  // vfud sent it.
  assert.deepEqual(r.fromGuest, range(0, r.sent));
  // Host -> guest: in order, never twice. Missing only: datagrams sent to the stopped source,
  // and a tail of the burst still queued in its tap (never read by it); the ones that waited
  // in its NIC came out of the destination.
  const received: number[] = r.received;
  assert.deepEqual(received, [...new Set(received)].sort((a, b) => a - b), "in order, no dups");
  const burst: number[] = r.burst;
  const lost = range(0, r.toGuest).filter((s) => !received.includes(s));
  const burstGot = burst.filter((s) => received.includes(s));
  assert.ok(burstGot.length >= 1, "the frame waiting in the source NIC was delivered");
  assert.deepEqual(burstGot, burst.slice(0, burstGot.length), "a prefix of the burst");
  assert.deepEqual(
    lost,
    [...burst.slice(burstGot.length), ...r.blackout],
    "nothing else lost",
  );
});
