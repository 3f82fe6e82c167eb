/**
 * The VMM's side of migration v2 over vfio-user (spec, "VFIO_USER_DEVICE_FEATURE",
 * "VFIO_USER_MIG_DATA_READ/WRITE"): the device features (migration flags, device state, dirty
 * logging) on one connection, and {@link migrate}, which moves a running device from one server
 * to another the way a VMM does: pre-copy while the device runs, stop-and-copy, resume on the
 * destination.
 *
 * @module
 */
import { Command, SIZE as HEADER_SIZE } from "../protocol/header.ts";
import {
  DeviceFeature,
  DeviceState,
  DmaLoggingControlFeature,
  DmaLoggingReportFeature,
  type DmaRange,
  Feature,
  FeatureFlags,
  type FeatureMessage,
  MigDeviceStateFeature,
  MigrationFeature,
} from "../protocol/feature.ts";
import { MigDataRead, MigDataWrite } from "../protocol/mig_data.ts";
import { concatBytes } from "../protocol/wire.ts";
import type { RequestOptions, VfioUserClient } from "./client.ts";

export { DeviceState };

/** The migration features of the device behind one connection. */
export class DeviceMigration {
  readonly client: VfioUserClient;

  constructor(client: VfioUserClient) {
    this.client = client;
  }

  /** DEVICE_FEATURE: `ops` of `feature` with `data`; returns the decoded reply. */
  async feature(
    feature: number,
    ops: number,
    data: Uint8Array = new Uint8Array(0),
    opts: RequestOptions & { argsz?: number } = {},
  ): Promise<FeatureMessage> {
    const argsz = opts.argsz ?? DeviceFeature.SIZE + data.length;
    const payload = DeviceFeature.encodeRequest({ argsz, feature, ops, data });
    const r = await this.client.request(Command.DEVICE_FEATURE, payload, {
      maxReplySize: HEADER_SIZE + Math.max(argsz, payload.length),
      ...opts,
    });
    return DeviceFeature.decodeReply(r.payload);
  }

  /** MIGRATION GET: the `MigrationFlags` bits. */
  async flags(): Promise<number> {
    const r = await this.feature(Feature.MIGRATION, FeatureFlags.GET, undefined, { argsz: 16 });
    return MigrationFeature.decode(r.data).flags;
  }

  /** MIG_DEVICE_STATE GET. */
  async state(): Promise<number> {
    const r = await this.feature(Feature.MIG_DEVICE_STATE, FeatureFlags.GET, undefined, {
      argsz: 16,
    });
    return MigDeviceStateFeature.decode(r.data).deviceState;
  }

  /** MIG_DEVICE_STATE SET: resolves once the device is in `state`. */
  async setState(state: number, opts: RequestOptions = {}): Promise<void> {
    const data = MigDeviceStateFeature.encode({ deviceState: state, dataFd: 0xffffffff });
    await this.feature(Feature.MIG_DEVICE_STATE, FeatureFlags.SET, data, opts);
  }

  /** MIG_DATA_READ of at most `size` bytes (fewer: no more data for now). */
  async read(size: number, opts: RequestOptions = {}): Promise<Uint8Array> {
    const payload = MigDataRead.encodeRequest({ argsz: MigDataRead.SIZE + size, size });
    const r = await this.client.request(Command.MIG_DATA_READ, payload, {
      maxReplySize: HEADER_SIZE + MigDataRead.SIZE + size,
      ...opts,
    });
    return MigDataRead.decodeReply(r.payload).data;
  }

  /** MIG_DATA_WRITE. */
  async write(data: Uint8Array, opts: RequestOptions = {}): Promise<void> {
    const payload = MigDataWrite.encodeRequest({ argsz: MigDataWrite.SIZE + data.length, data });
    const r = await this.client.request(Command.MIG_DATA_WRITE, payload, opts);
    MigDataWrite.decodeReply(r.payload);
  }

  /** Reads until a short read (the end of the data for now); returns everything read. */
  async readAll(chunk = 64 * 1024): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for (;;) {
      const b = await this.read(chunk);
      parts.push(b);
      if (b.length < chunk) return concatBytes(parts);
    }
  }

  /** Writes `data` in pieces of at most `chunk` bytes. */
  async writeAll(data: Uint8Array, chunk = 64 * 1024): Promise<void> {
    for (let at = 0; at < data.length; at += chunk) {
      await this.write(data.subarray(at, Math.min(at + chunk, data.length)));
    }
  }

  /** DMA_LOGGING_START; returns the tracking page size the device chose. */
  async startDirtyLog(pageSize: bigint, ranges: DmaRange[] = []): Promise<bigint> {
    const data = DmaLoggingControlFeature.encode({ pageSize, ranges });
    const r = await this.feature(Feature.DMA_LOGGING_START, FeatureFlags.SET, data);
    return DmaLoggingControlFeature.decode(r.data).pageSize;
  }

  /** DMA_LOGGING_STOP. */
  async stopDirtyLog(): Promise<void> {
    await this.feature(Feature.DMA_LOGGING_STOP, FeatureFlags.SET);
  }

  /** DMA_LOGGING_REPORT: the bitmap of [iova, iova+length) at `pageSize` per bit. */
  async dirtyReport(iova: bigint, length: bigint, pageSize: bigint): Promise<Uint8Array> {
    const data = DmaLoggingReportFeature.encodeRequest({ iova, length, pageSize });
    const size = DmaLoggingReportFeature.bitmapSize(length, pageSize);
    const r = await this.feature(Feature.DMA_LOGGING_REPORT, FeatureFlags.GET, data, {
      argsz: DeviceFeature.SIZE + DmaLoggingReportFeature.SIZE + size,
    });
    return DmaLoggingReportFeature.decodeReply(r.data).bitmap;
  }
}

/** Page numbers (bit indexes) set in a dirty bitmap. */
export function dirtyPages(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bitmap.length * 8; i++) if (bitmap[i >> 3] & (1 << (i & 7))) out.push(i);
  return out;
}

/** Hooks and limits of {@link migrate}. */
export interface MigrateOptions {
  /** Pre-copy rounds before stop-and-copy (0: straight to STOP_COPY). Default 2. */
  preCopyRounds?: number;
  /** Called after each pre-copy round while both devices are in their pre-copy states. */
  duringPreCopy?: (round: number) => Promise<void> | void;
  /** Called once the source is stopped and its data read, before the destination loads it. */
  sourceStopped?: () => Promise<void> | void;
  /**
   * Called after the destination loaded the state (STOP), before it runs: the VMM sets up the
   * destination's interrupts here.
   */
  beforeResume?: () => Promise<void> | void;
  /** MIG_DATA_READ/WRITE size. Default 64 KiB. */
  chunk?: number;
}

/** What {@link migrate} moved. */
export interface MigrationReport {
  /** Bytes sent during pre-copy. */
  preCopyBytes: number;
  /** Bytes sent during stop-and-copy. */
  stopCopyBytes: number;
  /** The whole stream as the destination got it. */
  stream: Uint8Array;
}

/**
 * Moves the device state from `src` to `dst`: src RUNNING → PRE_COPY (rounds of reads while it
 * runs), dst → RESUMING, src → STOP_COPY, the rest of the data, dst → STOP (load) → RUNNING,
 * src → STOP. Guest memory and DMA maps are the caller's (the destination must have its maps
 * before the load: the device checks that its rings are mapped).
 */
export async function migrate(
  src: DeviceMigration,
  dst: DeviceMigration,
  opts: MigrateOptions = {},
): Promise<MigrationReport> {
  const chunk = opts.chunk ?? 64 * 1024;
  const rounds = opts.preCopyRounds ?? 2;
  const sent: Uint8Array[] = [];
  await dst.setState(DeviceState.RESUMING);
  let preCopyBytes = 0;
  if (rounds > 0) {
    await src.setState(DeviceState.PRE_COPY);
    for (let round = 0; round < rounds; round++) {
      const data = await src.readAll(chunk);
      sent.push(data);
      preCopyBytes += data.length;
      await dst.writeAll(data, chunk);
      await opts.duringPreCopy?.(round);
    }
  }
  await src.setState(DeviceState.STOP_COPY);
  const rest = await src.readAll(chunk);
  sent.push(rest);
  await opts.sourceStopped?.();
  await dst.writeAll(rest, chunk);
  await dst.setState(DeviceState.STOP);
  await opts.beforeResume?.();
  await dst.setState(DeviceState.RUNNING);
  await src.setState(DeviceState.STOP);
  return { preCopyBytes, stopCopyBytes: rest.length, stream: concatBytes(sent) };
}
