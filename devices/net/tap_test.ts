import assert from "node:assert/strict";

/** The tap test needs a private network namespace (root or user namespaces) and /dev/net/tun. */
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

const available = await canUseNetns();

Deno.test({
  name: "tap backend: ARP and UDP through a tap in a private network namespace; paused reading",
  async fn() {
    // A missing prerequisite is a failure, not a silent skip (CI runs as root).
    assert.ok(available, "needs /dev/net/tun and `unshare --net` (root or user namespaces)");
    const probe = new URL("./tap_probe.ts", import.meta.url).pathname;
    const out = await new Deno.Command("unshare", {
      args: ["--net", Deno.execPath(), "run", "--allow-all", probe],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    const err = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `probe failed (${out.code}): ${text}\n${err}`);
    const result = JSON.parse(text.split("\n").at(-1)!);
    assert.equal(result.ifname, "vfudtap0");
    assert.ok(result.arp >= 1, "the kernel's ARP request came out of the tap");
    assert.equal(result.udp, "ping");
    assert.equal(result.reply, "pong");
    assert.ok(result.paused, "reading stopped while the NIC could not receive");
    assert.equal(result.whilePaused, 0, "nothing was read meanwhile");
    assert.deepEqual(result.after, Array.from({ length: 20 }, (_, i) => `late ${i}`));
  },
});

Deno.test("tap backend: a bad interface name is refused before touching the system", async () => {
  const { TapBackend } = await import("./tap.ts");
  const { EventLoop } = await import("../../sys/event_loop.ts");
  const fake = {} as InstanceType<typeof EventLoop>;
  assert.throws(() => TapBackend.open(fake, { ifname: "" }), /1-15 bytes/);
  assert.throws(() => TapBackend.open(fake, { ifname: "x".repeat(16) }), /1-15 bytes/);
  assert.throws(
    () => TapBackend.open(fake, { ifname: "t0", cloneDevice: "/nonexistent/tun" }),
    /open \/nonexistent\/tun/,
  );
});
