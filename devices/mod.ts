/**
 * Device types vfud can serve, by name, and the parsing of `--device TYPE,key=value,...`.
 * Adding a device type is one entry in {@link DEVICE_TYPES}.
 *
 * @module
 */
import type { Device, DeviceEnv } from "./device.ts";
import { createVirtioBlk } from "./virtio-blk/mod.ts";
import { FileBackend } from "./virtio-blk/file_backend.ts";
import { e1000DeviceType } from "./e1000/mod.ts";

export type { Device, DeviceContext, DeviceEnv } from "./device.ts";

/** Options of one `--device` argument. */
export type DeviceOptions = Map<string, string>;

/** A device type: its option names (for validation and --help) and its factory. */
export interface DeviceType {
  name: string;
  description: string;
  /** Option name → help text; `required` options must be given. */
  options: Record<string, { help: string; required?: boolean }>;
  create(opts: DeviceOptions, env: DeviceEnv): Device;
}

/** Parses "on"/"off" (and the usual synonyms) of a boolean option. */
export function boolOption(opts: DeviceOptions, key: string, def = false): boolean {
  const v = opts.get(key);
  if (v === undefined) return def;
  if (["on", "yes", "true", "1"].includes(v)) return true;
  if (["off", "no", "false", "0"].includes(v)) return false;
  throw new Error(`option ${key}=${v}: expected on or off`);
}

const virtioBlk: DeviceType = {
  name: "virtio-blk",
  description: "virtio 1.x block device (modern virtio-pci, MSI-X) backed by a raw image file",
  options: {
    file: { help: "raw image file (must exist; its size is the disk size)", required: true },
    readonly: { help: "on|off: expose the disk read-only (VIRTIO_BLK_F_RO)" },
    serial: { help: "serial number reported by GET_ID (up to 20 bytes)" },
  },
  create(opts) {
    const backend = FileBackend.open({
      path: opts.get("file")!,
      readonly: boolOption(opts, "readonly"),
    });
    const serial = opts.get("serial");
    return createVirtioBlk(serial === undefined ? { backend } : { backend, serial });
  },
};

/** Every device type, by name. */
export const DEVICE_TYPES: ReadonlyMap<string, DeviceType> = new Map(
  [virtioBlk, e1000DeviceType].map((t) => [t.name, t]),
);

/** Splits "TYPE,key=value,..." and checks the options against the type. */
export function parseDeviceArg(arg: string): { type: DeviceType; options: DeviceOptions } {
  const [name, ...rest] = arg.split(",");
  const type = DEVICE_TYPES.get(name);
  if (!type) {
    throw new Error(
      `unknown device type "${name}" (known: ${[...DEVICE_TYPES.keys()].join(", ")})`,
    );
  }
  const options: DeviceOptions = new Map();
  for (const kv of rest) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new Error(`device option "${kv}" is not key=value`);
    const key = kv.slice(0, eq);
    if (!(key in type.options)) throw new Error(`${name} has no option "${key}"`);
    options.set(key, kv.slice(eq + 1));
  }
  for (const [key, o] of Object.entries(type.options)) {
    if (o.required && !options.has(key)) throw new Error(`${name} needs ${key}=...`);
  }
  return { type, options };
}
