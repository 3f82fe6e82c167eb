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
  formatMac,
  type NetBackendBase,
  type NetdevSpec,
  openNetBackend,
  parseMac,
  PrivateLoop,
} from "../net/mod.ts";
import { E1000 } from "./device.ts";
import type { DeviceEnv } from "../device.ts";
import { boolOption, type DeviceOptionSpec } from "../options.ts";

/** IFNAMSIZ - 1: the longest Linux interface name. */
const IFNAME_MAX = 15;

/** Option names, help and value kinds of the e1000 device type. */
export const E1000_OPTIONS: Record<string, DeviceOptionSpec> = {
  netdev: { help: "tap|stream: the packet backend", required: true, value: ["tap", "stream"] },
  ifname: {
    help: "tap: interface to attach to (created if missing; needs CAP_NET_ADMIN)",
    check(v) {
      const n = new TextEncoder().encode(v).length;
      if (n === 0 || n > IFNAME_MAX || /[\s/:]/.test(v) || v === "." || v === "..") {
        throw new Error(
          `ifname=${v}: not an interface name (1 to ${IFNAME_MAX} bytes, no / : or space)`,
        );
      }
    },
  },
  path: { help: "stream: UNIX socket path (QEMU -netdev stream framing)", value: "path" },
  server: {
    help: "stream: on = listen on path (default), off = connect (and reconnect)",
    value: "bool",
  },
  mac: {
    help: "station address xx:xx:xx:xx:xx:xx (default 52:54:00:... from the netdev)",
    value: "mac",
  },
};

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
    spec = { netdev, path, server: boolOption(opts, "server", true) };
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
  let backend: NetBackendBase;
  if (env.loop) {
    backend = openNetBackend(env.loop, spec);
  } else {
    const own = new PrivateLoop();
    try {
      backend = openNetBackend(own.loop, spec);
    } catch (e) {
      void own.stop();
      throw e;
    }
    backend.onClose(() => void own.stop()); // the loop was the backend's alone
  }
  const loop = env.loop;
  const device: Device = loop
    ? new E1000({ backend, mac, setTimer: (fn, ms) => loop.setTimeout(fn, ms) })
    : new E1000({ backend, mac });
  device.summary = `${describeNetdev(spec)}, MAC ${formatMac(mac)}`;
  return device;
}

/** The device-table entry (devices/mod.ts). */
export const e1000DeviceType = {
  name: "e1000",
  description: "Intel 82540EM gigabit NIC (8086:100e, Linux e1000 driver) on a tap or stream",
  options: E1000_OPTIONS,
  validate(opts: ReadonlyMap<string, string>): void {
    parseE1000Options(opts);
  },
  create: createE1000FromOptions,
};
