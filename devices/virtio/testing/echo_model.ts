/**
 * A tiny virtio device model for transport tests: copies the device-readable bytes of each chain
 * into its device-writable bytes. Tests can hold requests (to observe concurrency, kicks during
 * processing and reset) and make requests fail.
 *
 * @module
 */
import { readBuffers, totalLength, writeBuffers } from "../buffers.ts";
import type { DescChain } from "../descriptors.ts";
import type { ModelHost, VirtioDeviceModel } from "../model.ts";

/** Echo device model with hooks for tests. */
export class EchoModel implements VirtioDeviceModel {
  readonly type = "virtio-echo";
  readonly deviceId = 0x3f;
  readonly classCode = 0xff0000;
  readonly features = 1n << 5n;
  readonly queueSizes: readonly number[];
  readonly configLength = 8;
  readonly config = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  /** When set, requests wait for {@link release} before completing. */
  hold = false;
  /** When set, handle() rejects with this error. */
  failWith?: Error;
  /** Chains seen, in order. */
  readonly seen: DescChain[] = [];
  resets = 0;
  #held: (() => void)[] = [];

  constructor(queueSizes: readonly number[] = [8, 8]) {
    this.queueSizes = queueSizes;
  }

  /** Number of requests waiting for {@link release}. */
  get held(): number {
    return this.#held.length;
  }

  /** Lets held requests complete (all, or the `n` oldest). */
  release(n = this.#held.length): void {
    for (const r of this.#held.splice(0, n)) r();
  }

  readConfig(offset: number, dst: Uint8Array): void {
    dst.set(this.config.subarray(offset, offset + dst.length));
  }

  writeConfig(offset: number, src: Uint8Array): void {
    this.config.set(src, offset);
  }

  async handle(_queue: number, chain: DescChain, ctx: ModelHost): Promise<number> {
    this.seen.push(chain);
    if (this.hold) await new Promise<void>((r) => this.#held.push(r));
    if (this.failWith) throw this.failWith;
    const n = Math.min(totalLength(chain.readable), totalLength(chain.writable));
    const bytes = new Uint8Array(n);
    await readBuffers(ctx.mem, chain.readable, 0, bytes);
    await writeBuffers(ctx.mem, chain.writable, 0, bytes);
    return n;
  }

  reset(): void {
    this.resets++;
  }

  close(): void {}
}
