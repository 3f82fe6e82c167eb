/**
 * The `--device doorbell` entry: the example device of README "Adding a device" (device.ts),
 * offered only to tests (`testOnly`: vfud lists and accepts it when VFUD_TEST_DEVICES=1).
 *
 * @module
 */
import type { Device } from "../device.ts";
import { Doorbell } from "./device.ts";

export * from "./device.ts";

/** The device-table entry (devices/mod.ts). */
export const doorbellDeviceType = {
  name: "doorbell",
  description: "test device: a doorbell register whose jobs are logged to guest memory with an " +
    "interrupt (MSI-X or INTx)",
  testOnly: true,
  options: {},
  create: (): Device => new Doorbell(),
};
