import assert from "node:assert/strict";
import { DEVICE_TYPES, parseDeviceArg } from "../mod.ts";
import { formatMac } from "../net/mac.ts";
import { runningLoop, until } from "../net/testing.ts";
import { E1000 } from "./device.ts";
import { createE1000FromOptions, parseE1000Options } from "./options.ts";

Deno.test("e1000 options: netdev choices, MAC defaults and errors", () => {
  assert.ok(DEVICE_TYPES.has("e1000"));
  const tap = parseDeviceArg("e1000,netdev=tap,ifname=tap7");
  const a = parseE1000Options(tap.options);
  assert.deepEqual(a.spec, { netdev: "tap", ifname: "tap7" });
  assert.match(formatMac(a.mac), /^52:54:00:/);
  assert.deepEqual(parseE1000Options(tap.options).mac, a.mac, "stable default");
  const other = parseE1000Options(parseDeviceArg("e1000,netdev=tap,ifname=tap8").options);
  assert.notDeepEqual(other.mac, a.mac, "different netdev, different MAC");
  const s = parseE1000Options(
    parseDeviceArg("e1000,netdev=stream,path=/tmp/x.sock,server=off,mac=02:11:22:33:44:55").options,
  );
  assert.deepEqual(s.spec, { netdev: "stream", path: "/tmp/x.sock", server: false });
  assert.equal(formatMac(s.mac), "02:11:22:33:44:55");
  const bad = (arg: string, re: RegExp) =>
    assert.throws(() => parseE1000Options(parseDeviceArg(arg).options), re);
  bad("e1000,netdev=tap", /needs ifname/);
  bad("e1000,netdev=stream", /needs path/);
  bad("e1000,netdev=tap,ifname=t,path=/x", /path= is not for tap/);
  bad("e1000,netdev=bogus", /expected tap or stream/);
  bad("e1000,netdev=tap,ifname=t,mac=01:00:00:00:00:01", /multicast/);
  bad("e1000,netdev=tap,ifname=t,mac=zz", /not a MAC/);
  bad("e1000,netdev=stream,path=/x,server=maybe", /on or off/);
  assert.throws(() => parseDeviceArg("e1000"), /needs netdev/);
});

Deno.test("e1000 factory: a stream device on the caller's loop, and on a private one", async () => {
  const dir = await Deno.makeTempDir();
  const { loop, stop } = runningLoop();
  try {
    const shared = createE1000FromOptions(
      new Map([["netdev", "stream"], ["path", `${dir}/a.sock`]]),
      { loop },
    ) as E1000;
    const own = createE1000FromOptions(
      new Map([["netdev", "stream"], ["path", `${dir}/a.sock`], ["server", "off"]]),
    ) as E1000;
    assert.equal(shared.type, "e1000");
    // The client connects (on its private loop) to the server (on the shared loop).
    await until(() => shared.phy.linkUp && own.phy.linkUp, "cable plugged");
    own.close();
    await until(() => !shared.phy.linkUp, "peer gone");
    shared.close();
  } finally {
    await stop();
    await Deno.remove(dir, { recursive: true });
  }
});
