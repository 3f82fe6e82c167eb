/**
 * `vfud --print-capabilities`: what this build can serve, as JSON, generated from the device
 * registry (devices/mod.ts DEVICE_TYPES), the server's session limits and its command table,
 * so a new device type or command shows up without touching this file.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };
import { DEVICE_TYPES } from "../devices/mod.ts";
import { commandName } from "../protocol/header.ts";
import { VERSION_MAJOR, VERSION_MINOR } from "../protocol/version.ts";
import { commandHandlers } from "../server/handlers.ts";
import { DEFAULT_SESSION_OPTIONS } from "../server/server.ts";

/** The version of this vfud build (deno.json "version"). */
export const VFUD_VERSION: string = denoJson.version;

/** One option of a device type. */
export interface DeviceOptionCapability {
  name: string;
  help: string;
  required: boolean;
}

/** One device type vfud can emulate. */
export interface DeviceCapability {
  /** The TYPE of `--device=TYPE,...`. */
  type: string;
  description: string;
  options: DeviceOptionCapability[];
}

/** The document `--print-capabilities` prints. */
export interface Capabilities {
  name: "vfud";
  version: string;
  /** vfio-user protocol version and the limits vfud offers in its VERSION reply. */
  protocol: {
    major: number;
    minor: number;
    commands: string[];
    max_msg_fds: number;
    max_data_xfer_size: number;
    max_dma_maps: number;
  };
  /** Backend-program features (how vfud can be started and observed). */
  features: string[];
  devices: DeviceCapability[];
}

/** Backend-program features of this build. */
export const FEATURES: readonly string[] = [
  "socket-path",
  "socket-mode",
  "socket-group",
  "fd-listening",
  "fd-connected",
  "systemd-socket-activation",
  "systemd-notify",
  "reconnect",
  "migration",
  "dirty-page-logging",
  "trace-protocol",
  "log-format-json",
  "log-format-journal",
  "systemd-status",
];

/** Builds the capabilities document. */
export function capabilities(): Capabilities {
  return {
    name: "vfud",
    version: VFUD_VERSION,
    protocol: {
      major: VERSION_MAJOR,
      minor: VERSION_MINOR,
      commands: Object.keys(commandHandlers).map(Number).sort((a, b) => a - b).map(commandName),
      max_msg_fds: DEFAULT_SESSION_OPTIONS.maxMsgFds,
      max_data_xfer_size: DEFAULT_SESSION_OPTIONS.maxDataXferSize,
      max_dma_maps: DEFAULT_SESSION_OPTIONS.maxDmaMaps,
    },
    features: [...FEATURES],
    devices: [...DEVICE_TYPES.values()].map((t) => ({
      type: t.name,
      description: t.description,
      options: Object.entries(t.options).map(([name, o]) => ({
        name,
        help: o.help,
        required: o.required === true,
      })),
    })),
  };
}
