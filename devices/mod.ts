/**
 * Device types vfud can serve, by name, and the parsing of `--device TYPE,key=value,...`.
 * Adding a device type is its folder plus one line in {@link DEVICE_TABLE}; its option table
 * (devices/options.ts) drives the checks, `--help`, the man page, shell completion and
 * `--print-capabilities`, and the shared lifecycle suite runs it.
 *
 * @module
 */
import type { Device, DeviceEnv } from "./device.ts";
import { virtioBlkDeviceType } from "./virtio-blk/options.ts";
import { e1000DeviceType } from "./e1000/mod.ts";
import { doorbellDeviceType } from "./doorbell/mod.ts";
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
  /**
   * Served only to tests: listed and accepted only when the environment has
   * `VFUD_TEST_DEVICES=1` (see {@link DEVICE_TYPES}).
   */
  testOnly?: boolean;
}

/** The device table: every device type, test-only ones included. */
export const DEVICE_TABLE: readonly DeviceType[] = [
  virtioBlkDeviceType,
  e1000DeviceType,
  doorbellDeviceType, // test-only: the example device of README "Adding a device"
];

/** Whether this process serves test-only device types (VFUD_TEST_DEVICES=1). */
function testDevices(): boolean {
  try {
    return Deno.env.get("VFUD_TEST_DEVICES") === "1";
  } catch {
    return false; // no permission to read the environment: a user's run
  }
}

/** The device types this process offers, by name: the table, less test-only ones for users. */
export const DEVICE_TYPES: ReadonlyMap<string, DeviceType> = new Map(
  DEVICE_TABLE.filter((t) => !t.testOnly || testDevices()).map((t) => [t.name, t]),
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
