import assert from "node:assert/strict";
import { runInNetns } from "../../tests/netns.ts";

Deno.test({
  name: "tap backend: ARP and UDP through a tap in a private network namespace; paused reading",
  async fn() {
    const probe = new URL("./testing/tap_probe.ts", import.meta.url).pathname;
    const result = await runInNetns<{
      ifname: string;
      arp: number;
      udp: string;
      reply: string;
      paused: boolean;
      whilePaused: number;
      after: string[];
    }>(probe, 30_000);
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
