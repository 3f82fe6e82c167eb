/**
 * A virtio device model whose queue is filled by the device's own work, the way a network
 * device's receive queue is: messages arrive from outside ({@link SourceModel.push}), wait until
 * the driver has made buffers available, and each goes into one buffer. Its configuration is a
 * 32-bit "link" word whose changes the model announces itself. For transport tests.
 *
 * @module
 */
import { writeBuffers } from "../buffers.ts";
import type { DescChain } from "../descriptors.ts";
import type { ModelHost, VirtioDeviceModel } from "../model.ts";
import { RecordReader, type RecordValue } from "../../../protocol/record.ts";

/** Source device model. */
export class SourceModel implements VirtioDeviceModel {
  readonly type = "virtio-source";
  readonly deviceId = 0x3e;
  readonly classCode = 0xff0000;
  readonly features = 0n;
  readonly queueSizes = [8];
  readonly configLength = 4;
  /** Messages waiting for a buffer. */
  pending: Uint8Array[] = [];
  host: ModelHost | undefined;
  link = 1;

  attach(host: ModelHost): void {
    this.host = host;
  }

  /** A message arrived: it goes to the driver once there is a buffer for it. */
  push(...messages: Uint8Array[]): void {
    this.pending.push(...messages);
    this.host!.kick(0);
  }

  /** Changes the link word and tells the driver. */
  setLink(link: number): void {
    this.link = link;
    this.host!.configChanged();
  }

  ready(): number {
    return this.pending.length;
  }

  async handle(_queue: number, chain: DescChain, host: ModelHost): Promise<number> {
    const msg = this.pending.shift()!; // taken before the first wait: ready() counts it at once
    await writeBuffers(host.mem, chain.writable, 0, msg);
    return msg.length;
  }

  readConfig(offset: number, dst: Uint8Array): void {
    const cfg = new Uint8Array(4);
    new DataView(cfg.buffer).setUint32(0, this.link, true);
    dst.set(cfg.subarray(offset, offset + dst.length));
  }

  writeConfig(): void {}

  reset(): void {
    this.pending = [];
  }

  save(): RecordValue {
    return { pending: this.pending.map((m) => m.slice()), link: this.link };
  }

  restore(raw: unknown): void {
    const r = new RecordReader(raw, "virtio-source");
    const pending = r.list("pending", 64).map((m) => m as Uint8Array);
    const link = r.uint("link", 32);
    r.done();
    this.pending = pending;
    this.link = link;
  }

  close(): void {}
}
