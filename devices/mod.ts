/**
 * Device types vfud can serve, by name, and the parsing of `--device TYPE,key=value,...`.
 * Adding a device type is one entry in {@link DEVICE_TYPES}; its option table (devices/options.ts)
 * drives the checks, `--help`, the man page, shell completion and `--print-capabilities`.
 *
 * @module
 */
import type { Device, DeviceEnv } from "./device.ts";
import { createVirtioBlk } from "./virtio-blk/mod.ts";
import { FileBackend } from "./virtio-blk/file_backend.ts";
import { ID_BYTES } from "./virtio-blk/constants.ts";
import { e1000DeviceType } from "./e1000/mod.ts";
import { logger } from "../sys/log.ts";
import {
  boolOption,
  type DeviceOptions,
  type DeviceOptionSpec,
  parseOptionList,
  splitOptionList,
} from "./options.ts";

export type { Device, DeviceContext, DeviceEnv } from "./device.ts";
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

const virtioBlk: DeviceType = {
  name: "virtio-blk",
  description: "virtio 1.x block device (modern virtio-pci, MSI-X) backed by a raw image file",
  options: {
    file: {
      help: "raw image file (must exist; its size is the disk size)",
      required: true,
      value: "path",
    },
    readonly: { help: "on|off: expose the disk read-only (VIRTIO_BLK_F_RO)", value: "bool" },
    serial: {
      help: `serial number reported by GET_ID (up to ${ID_BYTES} bytes)`,
      check(v) {
        const n = new TextEncoder().encode(v).length;
        if (n > ID_BYTES) throw new Error(`serial=${v}: ${n} bytes, at most ${ID_BYTES}`);
      },
    },
  },
  create(opts) {
    const file = opts.get("file")!;
    const readonly = boolOption(opts, "readonly");
    const backend = FileBackend.open({ path: file, readonly });
    warnAboutImageSize(file, backend.fileSize);
    const serial = opts.get("serial");
    const device = createVirtioBlk(serial === undefined ? { backend } : { backend, serial });
    device.summary = `${file}: ${formatBytes(backend.size)}, ` +
      `${readonly ? "read-only" : "read-write"}${serial ? `, serial ${serial}` : ""}`;
    return device;
  },
};

/** "10 GiB (10737418240 bytes)", "1000 bytes". */
export function formatBytes(n: bigint): string {
  const units: [string, bigint][] = [["TiB", 1n << 40n], ["GiB", 1n << 30n], ["MiB", 1n << 20n], [
    "KiB",
    1n << 10n,
  ]];
  for (const [unit, size] of units) {
    if (n >= size) {
      const v = Number(n) / Number(size);
      const text = Number.isInteger(v) ? String(v) : v.toFixed(1);
      return `${text} ${unit} (${n} bytes)`;
    }
  }
  return `${n} bytes`;
}

/** A disk image the guest cannot use whole deserves a word: empty, or not whole sectors. */
function warnAboutImageSize(file: string, size: bigint): void {
  const log = logger("device", "virtio-blk");
  if (size < 512n) {
    log.warning("image {file} is {size} bytes: the guest sees an empty disk (0 sectors)", {
      file,
      size,
    });
  } else if (size % 512n) {
    log.warning(
      "image {file} is {size} bytes, not a multiple of 512: its last {rest} bytes are not served",
      { file, size, rest: size % 512n },
    );
  }
}

/** Every device type, by name. */
export const DEVICE_TYPES: ReadonlyMap<string, DeviceType> = new Map(
  [virtioBlk, e1000DeviceType].map((t) => [t.name, t]),
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
