/**
 * Device types vfud can serve, by name, and the parsing of `--device TYPE,key=value,...`.
 * Adding a device type is one entry in {@link DEVICE_TYPES}; its option table (devices/options.ts)
 * drives the checks, `--help`, the man page, shell completion and `--print-capabilities`.
 *
 * @module
 */
import type { Device, DeviceEnv } from "./device.ts";
import { virtioBlkDeviceType } from "./virtio-blk/options.ts";
import { e1000DeviceType } from "./e1000/mod.ts";
import {
  type DeviceOptions,
  type DeviceOptionSpec,
  parseOptionList,
  splitOptionList,
} from "./options.ts";

export type { Device, DeviceContext, DeviceEnv } from "./device.ts";
export { formatBytes } from "./virtio-blk/options.ts";
export {
  boolOption,
  type DeviceOptions,
  type DeviceOptionSpec,
  escapeOptionValue,
  type OptionValue,
  parseSizeText,
  sizeOption,
  splitOptionList,
  uintOption,
} from "./options.ts";

/** A device type: its options (checks, --help, completion) and its factory. */
export interface DeviceType {
  name: string;
  description: string;
  /** Option name → spec; `required` options must be given. */
  options: Record<string, DeviceOptionSpec>;
  /**
   * Checks the options together, once each value passed its own check (e.g. "netdev=stream
   * needs path="): throws with the reason. Pure: nothing is opened.
   */
  validate?(opts: DeviceOptions): void;
  /** Builds the device from options that passed {@link parseDeviceArg}. */
  create(opts: DeviceOptions, env: DeviceEnv): Device;
}

/** Every device type, by name. */
export const DEVICE_TYPES: ReadonlyMap<string, DeviceType> = new Map(
  [virtioBlkDeviceType as DeviceType, e1000DeviceType].map((t) => [t.name, t]),
);

/**
 * Parses "TYPE,key=value,..." (QEMU syntax: `,,` is a comma inside a value) and checks every
 * option against the type: names, values, required ones, then the type's own cross-checks.
 * Throws with the reason; opens nothing.
 */
export function parseDeviceArg(arg: string): { type: DeviceType; options: DeviceOptions } {
  const [name, ...rest] = splitOptionList(arg);
  const type = DEVICE_TYPES.get(name);
  if (!type) {
    throw new Error(
      `unknown device type "${name}" (known: ${[...DEVICE_TYPES.keys()].join(", ")})`,
    );
  }
  const options = parseOptionList(name, rest, type.options);
  type.validate?.(options);
  return { type, options };
}
