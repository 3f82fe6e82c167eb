/**
 * Driver-visible transport state of a virtio PCI function: the values behind the common
 * configuration registers (virtio 1.x §4.1.4.3), with their power-on defaults.
 *
 * @module
 */
import { NO_VECTOR } from "../../spec/virtio.ts";
import type { QueueRunner } from "./queue_runner.ts";

/** Configuration of one virtqueue as written by the driver. */
export interface QueueState {
  /** Maximum size the device supports (power of two). */
  readonly maxSize: number;
  size: number;
  msixVector: number;
  enabled: boolean;
  desc: bigint;
  driver: bigint;
  device: bigint;
  /** Processing state; present while enabled. */
  runner?: QueueRunner;
}

/** All common-configuration values of one function. */
export class TransportState {
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  /** Features written by the driver so far. */
  driverFeatures = 0n;
  /** Features in force once FEATURES_OK was accepted. */
  negotiated = 0n;
  configMsixVector = NO_VECTOR;
  status = 0;
  configGeneration = 0;
  queueSelect = 0;
  isr = 0;
  readonly queues: QueueState[];

  constructor(queueSizes: readonly number[]) {
    this.queues = queueSizes.map((maxSize) => ({
      maxSize,
      size: maxSize,
      msixVector: NO_VECTOR,
      enabled: false,
      desc: 0n,
      driver: 0n,
      device: 0n,
    }));
  }

  /** The queue chosen by queue_select, or undefined when out of range. */
  get selected(): QueueState | undefined {
    return this.queues[this.queueSelect];
  }

  /** Back to power-on values (§2.4); config_generation keeps counting. */
  reset(): void {
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.driverFeatures = 0n;
    this.negotiated = 0n;
    this.configMsixVector = NO_VECTOR;
    this.status = 0;
    this.queueSelect = 0;
    this.isr = 0;
    for (const q of this.queues) {
      q.size = q.maxSize;
      q.msixVector = NO_VECTOR;
      q.enabled = false;
      q.desc = q.driver = q.device = 0n;
      q.runner = undefined;
    }
  }
}
