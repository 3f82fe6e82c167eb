/**
 * The lifecycle kits by device type name: one entry per entry of the device table (DEVICE_TABLE).
 *
 * @module
 */
import { doorbellKit } from "./doorbell.ts";
import { e1000Kit } from "./e1000.ts";
import type { LifecycleKit } from "./kit.ts";
import { virtioBlkKit } from "./virtio_blk.ts";

export type { LifecycleKit, Workload } from "./kit.ts";

/** Kits by device type name. */
export const KITS: Readonly<Record<string, LifecycleKit>> = {
  "virtio-blk": virtioBlkKit,
  "e1000": e1000Kit,
  "doorbell": doorbellKit,
};
