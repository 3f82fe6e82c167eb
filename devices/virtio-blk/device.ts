/**
 * The virtio block device (virtio 1.x §5.2) on the virtio PCI transport.
 *
 * @module
 */
import type { Device } from "../device.ts";
import {
  type DescChain,
  type ModelHost,
  type VirtioDeviceModel,
  VirtioPciDevice,
  type VirtioPciOptions,
} from "../virtio/mod.ts";
import { feature, MAX_QUEUE_SIZE } from "../../spec/virtio.ts";
import type { BlockBackend } from "./backend.ts";
import { BLK_CONFIG_LENGTH, type DwzLimits, encodeBlkConfig } from "./config.ts";
import { BlkFeature, ID_BYTES, VIRTIO_ID_BLOCK } from "../../spec/virtio_blk.ts";

/** PCI class code: mass storage, SCSI (what QEMU uses for virtio-blk). */
const CLASS_STORAGE_SCSI = 0x010000;
import { type BlkTarget, handleBlkRequest } from "./request.ts";
import { RecordReader, type RecordValue } from "../../protocol/record.ts";
import { toHex } from "../../protocol/hex.ts";

/** Options of {@link createVirtioBlk}. */
export interface VirtioBlkOptions {
  /** Backing storage. */
  backend: BlockBackend;
  /** Serial number returned by GET_ID; UTF-8, truncated to 20 bytes. */
  serial?: string;
  /** Size of each request queue, a power of two in [4, 32768]. Default 256. */
  queueSize?: number;
  /** Number of request queues; more than one offers VIRTIO_BLK_F_MQ. Default 1. */
  numQueues?: number;
  /** Offer DISCARD (VIRTIO_BLK_F_DISCARD) when the backend can deallocate. Default true. */
  discard?: boolean;
  /** Offer WRITE_ZEROES (VIRTIO_BLK_F_WRITE_ZEROES) when the backend can. Default true. */
  writeZeroes?: boolean;
  /** Transport options (EVENT_IDX, INDIRECT_DESC, error hook). */
  transport?: VirtioPciOptions;
}

/** Sectors one DISCARD / WRITE_ZEROES segment may cover (1 GiB), and segments per request. */
const DWZ_MAX_SECTORS = (1 << 30) / 512;
const DWZ_MAX_SEGMENTS = 32;

/** GET_ID answer: the serial, NUL padded to 20 bytes (§5.2.6). */
function encodeId(serial: string): Uint8Array {
  const id = new Uint8Array(ID_BYTES);
  const bytes = new TextEncoder().encode(serial);
  id.set(bytes.subarray(0, ID_BYTES));
  return id;
}

function checkOptions(queueSize: number, numQueues: number): void {
  const pow2 = (queueSize & (queueSize - 1)) === 0;
  if (!Number.isInteger(queueSize) || !pow2 || queueSize < 4 || queueSize > MAX_QUEUE_SIZE) {
    throw new RangeError(`virtio-blk: bad queue size ${queueSize}`);
  }
  if (!Number.isInteger(numQueues) || numQueues < 1 || numQueues > 64) {
    throw new RangeError(`virtio-blk: bad number of queues ${numQueues}`);
  }
}

/** The block device model: features, configuration and request handling. */
class BlkModel implements VirtioDeviceModel {
  readonly type = "virtio-blk";
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly classCode = CLASS_STORAGE_SCSI;
  readonly features: bigint;
  readonly queueSizes: readonly number[];
  readonly configLength = BLK_CONFIG_LENGTH;
  readonly #backend: BlockBackend;
  readonly #id: Uint8Array;
  readonly #segMax: number;
  readonly #discard: DwzLimits | undefined;
  readonly #writeZeroes: (DwzLimits & { mayUnmap: boolean }) | undefined;
  /** What every request needs: the disk and limits, the transport's memory and features. */
  #target: BlkTarget | undefined;

  constructor(opts: VirtioBlkOptions, queueSize: number, numQueues: number) {
    this.#backend = opts.backend;
    this.#id = encodeId(opts.serial ?? "");
    this.#segMax = queueSize - 2;
    this.queueSizes = new Array(numQueues).fill(queueSize);
    let f = feature(BlkFeature.SEG_MAX) | feature(BlkFeature.BLK_SIZE) |
      feature(BlkFeature.FLUSH);
    if (opts.backend.readonly) f |= feature(BlkFeature.RO);
    if (numQueues > 1) f |= feature(BlkFeature.MQ);
    const limits = { maxSectors: DWZ_MAX_SECTORS, maxSegments: DWZ_MAX_SEGMENTS };
    const writable = !opts.backend.readonly;
    if (writable && (opts.discard ?? true) && opts.backend.discard) {
      this.#discard = limits;
      f |= feature(BlkFeature.DISCARD);
    }
    if (writable && (opts.writeZeroes ?? true) && opts.backend.writeZeroes) {
      // deallocating is allowed only where DISCARD is (a user who turned discard off keeps
      // the image allocated)
      this.#writeZeroes = { ...limits, mayUnmap: this.#discard !== undefined };
      f |= feature(BlkFeature.WRITE_ZEROES);
    }
    this.features = f;
  }

  attach(host: ModelHost): void {
    this.#target = {
      backend: this.#backend,
      id: this.#id,
      discard: this.#discard,
      writeZeroes: this.#writeZeroes,
      get mem() {
        return host.mem;
      },
      get features() {
        return host.features;
      },
      get log() {
        return host.log;
      },
    };
  }

  readConfig(offset: number, dst: Uint8Array): void {
    // Encoded on each read so that a backend that grows is seen (after configChanged()).
    const cfg = encodeBlkConfig({
      sizeBytes: this.#backend.size,
      segMax: this.#segMax,
      numQueues: this.queueSizes.length,
      blockSize: this.#backend.blockSize,
      discard: this.#discard,
      writeZeroes: this.#writeZeroes,
    });
    dst.set(cfg.subarray(offset, offset + dst.length));
  }

  writeConfig(): void {
    // Nothing is writable: CONFIG_WCE is not offered (§5.2.4).
  }

  handle(_queue: number, chain: DescChain): Promise<number> {
    return handleBlkRequest(this.#target!, chain);
  }

  reset(): void {}

  /**
   * No state of its own (the configuration is read-only), but what the driver saw of the disk:
   * a destination with another size, write permission, serial or logical block size (O_DIRECT
   * on a file system of another sector size) is another disk. Queue count and sizes, and the
   * DISCARD/WRITE_ZEROES features, are checked with the transport's record.
   */
  save(): RecordValue {
    return {
      capacity: this.#backend.size,
      readonly: this.#backend.readonly,
      id: this.#id.slice(),
      blockSize: this.#backend.blockSize ?? 512,
    };
  }

  restore(raw: unknown): void {
    const r = new RecordReader(raw, "virtio-blk");
    const capacity = r.u64("capacity");
    const readonly = r.bool("readonly");
    const id = r.bytes("id", ID_BYTES);
    const blockSize = r.has("blockSize") ? r.uint("blockSize", 32) : 512;
    r.done();
    if (capacity !== this.#backend.size) {
      r.fail("capacity", `the saved disk has ${capacity} bytes, this one ${this.#backend.size}`);
    }
    if (readonly !== this.#backend.readonly) r.fail("readonly", "differs from this disk");
    if (toHex(id) !== toHex(this.#id)) r.fail("id", "another serial");
    if (blockSize !== (this.#backend.blockSize ?? 512)) {
      r.fail("blockSize", `${blockSize}, this disk ${this.#backend.blockSize ?? 512}`);
    }
  }

  async flush(): Promise<void> {
    await this.#backend.flush();
  }

  close(): void {
    this.#backend.close();
  }
}

/** Creates a virtio-blk PCI function (device 0x1af4:0x1042) over `opts.backend`. */
export function createVirtioBlk(opts: VirtioBlkOptions): Device & VirtioPciDevice {
  const queueSize = opts.queueSize ?? 256;
  const numQueues = opts.numQueues ?? 1;
  checkOptions(queueSize, numQueues);
  return new VirtioPciDevice(new BlkModel(opts, queueSize, numQueues), opts.transport);
}
