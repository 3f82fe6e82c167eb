/**
 * Shared setup of transport tests: an echo device on fake memory with a test driver.
 *
 * @module
 */
import { bounded } from "../../../tests/watchdog.ts";
import { VirtioPciDevice, type VirtioPciOptions } from "../transport.ts";
import { type Buf, type DriverQueue, TestDriver } from "./driver.ts";
import { EchoModel } from "./echo_model.ts";
import type { VirtioDeviceModel } from "../model.ts";
import { FakeContext, FakeGuestMemory, type FakeMemoryOptions } from "./fake_memory.ts";
import { type Device, quiesce } from "../../device.ts";

/** Rings of queue 0. */
export const RING0 = 0x1000;
/** Rings of queue 1. */
export const RING1 = 0x3000;
/** Data buffers. */
export const DATA = 0x10000;

/** Everything a transport test touches. */
export interface Rig<M extends VirtioDeviceModel> {
  model: M;
  dev: VirtioPciDevice;
  mem: FakeGuestMemory;
  ctx: FakeContext;
  drv: TestDriver;
}

/** The rig of the echo model. */
export type EchoRig = Rig<EchoModel>;

/** Options of {@link modelRig}. */
export interface RigOptions {
  transport?: VirtioPciOptions;
  mem?: Partial<FakeMemoryOptions>;
}

/** Builds a device around `model`, attached to fake memory and context. */
export function modelRig<M extends VirtioDeviceModel>(model: M, opts: RigOptions = {}): Rig<M> {
  const dev = new VirtioPciDevice(model, opts.transport);
  const mem = new FakeGuestMemory({ size: 1 << 20, ...opts.mem });
  const ctx = new FakeContext(mem);
  dev.attach(ctx);
  return { model, dev, mem, ctx, drv: new TestDriver(dev, mem) };
}

/** Builds an echo device, attached to fake memory and context. */
export function echoRig(opts: RigOptions & { queueSizes?: number[] } = {}): EchoRig {
  return modelRig(new EchoModel(opts.queueSizes), opts);
}

/** Negotiates `features` (default: all offered), sets up queue 0 and sets DRIVER_OK. */
export function bringUp(
  rig: Rig<VirtioDeviceModel>,
  features?: bigint,
  vector?: number,
): DriverQueue {
  if (!rig.drv.negotiate(features ?? rig.dev.offered)) throw new Error("FEATURES_OK refused");
  const q = rig.drv.setupQueue(0, RING0, undefined, vector);
  rig.drv.driverOk();
  return q;
}

/** One turn of the event loop. */
export function tick(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** The smallest request: one device-writable byte at DATA + `at`. */
export function oneByte(at = 0): Buf[] {
  return [{ addr: DATA + at, len: 1, write: true }];
}

/** An echo device with queue 0 up and one request in flight, held until `model.release()`. */
export async function heldRequest(): Promise<EchoRig & { q: DriverQueue }> {
  const rig = echoRig();
  const q = bringUp(rig);
  rig.model.hold = true;
  q.send(oneByte());
  await tick();
  return { ...rig, q };
}

/** Waits until the device finished everything in flight. */
export async function settle(rig: { dev: Device }): Promise<void> {
  // Bounded even if the device spins without yielding (tests/watchdog.ts).
  await bounded("settling the device", async () => {
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 0));
      await quiesce(rig.dev);
    }
  });
}
