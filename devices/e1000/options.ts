/**
 * The `--device e1000,...` entry: option parsing, backend choice and the factory.
 *
 *   e1000,netdev=tap,ifname=NAME[,mac=MAC]
 *   e1000,netdev=stream,path=SOCKET[,server=on|off][,mac=MAC]
 *
 * Backends need the process's EventLoop: the factory takes it as `env.loop`; without one it runs
 * a private loop that the device stops when it is closed.
 *
 * @module
 */
import type { Device } from "../device.ts";
import {
  defaultMac,
  describeNetdev,
  type NetBackend,
  type NetdevSpec,
  openNetBackend,
  parseMac,
  PrivateLoop,
  withOwnedLoop,
} from "../net/mod.ts";
import { E1000 } from "./device.ts";
import type { DeviceEnv } from "../device.ts";

/** Option names and help of the e1000 device type. */
export const E1000_OPTIONS: Record<string, { help: string; required?: boolean }> = {
  netdev: { help: "tap|stream: the packet backend", required: true },
  ifname: { help: "tap: interface to attach to (created if missing; needs CAP_NET_ADMIN)" },
  path: { help: "stream: UNIX socket path (QEMU -netdev stream framing)" },
  server: { help: "stream: on = listen on path (default), off = connect (and reconnect)" },
  mac: { help: "station address xx:xx:xx:xx:xx:xx (default 52:54:00:... from the netdev)" },
};

function onOff(v: string | undefined, key: string, def: boolean): boolean {
  if (v === undefined) return def;
  if (["on", "yes", "true", "1"].includes(v)) return true;
  if (["off", "no", "false", "0"].includes(v)) return false;
  throw new Error(`option ${key}=${v}: expected on or off`);
}

/** Checks the options and returns the backend choice and station address. */
export function parseE1000Options(
  opts: ReadonlyMap<string, string>,
): { spec: NetdevSpec; mac: Uint8Array } {
  const netdev = opts.get("netdev");
  const only = (allowed: string[]) => {
    for (const k of ["ifname", "path", "server"]) {
      if (opts.has(k) && !allowed.includes(k)) throw new Error(`e1000: ${k}= is not for ${netdev}`);
    }
  };
  let spec: NetdevSpec;
  if (netdev === "tap") {
    only(["ifname"]);
    const ifname = opts.get("ifname");
    if (!ifname) throw new Error("e1000: netdev=tap needs ifname=NAME");
    spec = { netdev, ifname };
  } else if (netdev === "stream") {
    only(["path", "server"]);
    const path = opts.get("path");
    if (!path) throw new Error("e1000: netdev=stream needs path=SOCKET");
    spec = { netdev, path, server: onOff(opts.get("server"), "server", true) };
  } else {
    throw new Error(`e1000: netdev=${netdev ?? ""}: expected tap or stream`);
  }
  const macText = opts.get("mac");
  const mac = macText === undefined ? defaultMac(describeNetdev(spec)) : parseMac(macText);
  return { spec, mac };
}

/** Creates an e1000 from command-line options. */
export function createE1000FromOptions(
  opts: ReadonlyMap<string, string>,
  env: Partial<DeviceEnv> = {}, // tests may leave the loop out: the device then runs its own
): Device {
  const { spec, mac } = parseE1000Options(opts);
  let backend: NetBackend;
  if (env.loop) {
    backend = openNetBackend(env.loop, spec);
  } else {
    const own = new PrivateLoop();
    try {
      backend = withOwnedLoop(openNetBackend(own.loop, spec), own);
    } catch (e) {
      void own.stop();
      throw e;
    }
  }
  return new E1000({ backend, mac });
}

/** The device-table entry (devices/mod.ts). */
export const e1000DeviceType = {
  name: "e1000",
  description: "Intel 82540EM gigabit NIC (8086:100e, Linux e1000 driver) on a tap or stream",
  options: E1000_OPTIONS,
  create: createE1000FromOptions,
};
