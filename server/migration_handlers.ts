/**
 * Handlers of the migration commands: DEVICE_FEATURE (spec, "VFIO_USER_DEVICE_FEATURE", with the
 * features MIGRATION, MIG_DEVICE_STATE, DMA_LOGGING_START/STOP/REPORT), MIG_DATA_READ and
 * MIG_DATA_WRITE. The state machine and the stream are migration/'s; dirty logging is dma/'s.
 *
 * Feature operations follow Linux's VFIO_DEVICE_FEATURE: an operation a feature does not have is
 * EINVAL; PROBE answers (with the request echoed) whether all the operations asked are there;
 * GET replies carry the data and argsz = the reply size (a smaller argsz is EINVAL); SET replies
 * echo the request (DMA_LOGGING_START with the page size actually chosen).
 *
 * @module
 */
import { Errno, VfioUserError } from "../protocol/errors.ts";
import {
  DeviceFeature,
  DmaLoggingControlFeature,
  DmaLoggingReportFeature,
  Feature,
  FeatureFlags,
  type FeatureMessage,
  MigDeviceStateFeature,
  MigrationFeature,
} from "../protocol/feature.ts";
import { MigDataRead, MigDataWrite } from "../protocol/mig_data.ts";
import { DirtyLog } from "../dma/dirty.ts";
import { MIGRATION_FLAGS } from "../migration/controller.ts";
import type { Handler, HandlerResult, SessionState } from "./handlers.ts";

/**
 * Largest dirty bitmap we put in one reply (the `max_bitmap_size` we offer): one message of
 * the default max_data_xfer_size, 32 GiB of guest memory at 4 KiB pages.
 */
export const DEFAULT_MAX_BITMAP = 1 << 20;

/** Tracking page size we offer (the `pgsize` of the `migration` capability). */
export const DIRTY_PGSIZE = 4096;

const { GET, SET } = FeatureFlags;

interface FeatureSpec {
  /** The operations it has. */
  ops: number;
  run(s: SessionState, m: FeatureMessage): HandlerResult | Promise<HandlerResult>;
}

function noFds(fds: number[], what: string): void {
  if (fds.length) throw new VfioUserError(Errno.EINVAL, `${what} takes no fds`);
}

/** A GET reply: the request's flags and the data, if argsz lets it through. */
function getReply(m: FeatureMessage, data: Uint8Array): HandlerResult {
  const size = DeviceFeature.SIZE + data.length;
  if (m.argsz < size) {
    throw new VfioUserError(
      Errno.EINVAL,
      `DEVICE_FEATURE ${m.feature}: argsz ${m.argsz} < ${size}`,
    );
  }
  return { payload: DeviceFeature.encodeReply({ feature: m.feature, ops: m.ops, data }) };
}

/** A SET reply: the request echoed (with `data` when given). */
function echo(m: FeatureMessage, data = m.data): HandlerResult {
  return {
    payload: DeviceFeature.encodeReply({ argsz: m.argsz, feature: m.feature, ops: m.ops, data }),
  };
}

const FEATURES: Readonly<Record<number, FeatureSpec>> = {
  [Feature.MIGRATION]: {
    ops: GET,
    run: (_s, m) => {
      if (m.data.length) throw new VfioUserError(Errno.EINVAL, "MIGRATION GET with data");
      return getReply(m, MigrationFeature.encode({ flags: MIGRATION_FLAGS }));
    },
  },
  [Feature.MIG_DEVICE_STATE]: {
    ops: GET | SET,
    run: async (s, m) => {
      if (m.ops & GET) {
        if (m.data.length) throw new VfioUserError(Errno.EINVAL, "MIG_DEVICE_STATE GET with data");
        const state = s.host.migration.state;
        return getReply(
          m,
          MigDeviceStateFeature.encode({ deviceState: state, dataFd: 0xffffffff }),
        );
      }
      const req = MigDeviceStateFeature.decode(m.data);
      const from = s.host.migration.state;
      await s.host.migration.set(req.deviceState);
      s.log.info("migration state {from} -> {to}", { from, to: req.deviceState });
      return echo(m);
    },
  },
  [Feature.DMA_LOGGING_START]: {
    ops: SET,
    run: (s, m) => {
      if (s.memory.dirtyLog) throw new VfioUserError(Errno.EBUSY, "dirty logging already started");
      const req = DmaLoggingControlFeature.decode(m.data);
      const log = new DirtyLog(req.pageSize, req.ranges, s.dirtyLimits);
      s.memory.setDirtyLog(log);
      return echo(m, DmaLoggingControlFeature.encode({ ...req, pageSize: log.pageSize }));
    },
  },
  [Feature.DMA_LOGGING_STOP]: {
    ops: SET,
    run: (s, m) => {
      // The data (a control struct, as Linux's users send) may also be absent.
      if (m.data.length) DmaLoggingControlFeature.decode(m.data);
      s.memory.setDirtyLog(undefined);
      return echo(m);
    },
  },
  [Feature.DMA_LOGGING_REPORT]: {
    ops: GET,
    run: (s, m) => {
      const req = DmaLoggingReportFeature.decodeRequest(m.data);
      const log = s.memory.dirtyLog;
      if (!log) throw new VfioUserError(Errno.EINVAL, "DMA_LOGGING_REPORT without logging started");
      const size = DeviceFeature.SIZE + DmaLoggingReportFeature.SIZE +
        DmaLoggingReportFeature.bitmapSize(req.length, req.pageSize);
      if (m.argsz < size) {
        throw new VfioUserError(Errno.EINVAL, `DMA_LOGGING_REPORT: argsz ${m.argsz} < ${size}`);
      }
      const bitmap = log.report(req.iova, req.length, req.pageSize);
      return getReply(m, DmaLoggingReportFeature.encodeReply({ ...req, bitmap }));
    },
  },
};

/** DEVICE_FEATURE. */
export const deviceFeature: Handler = (s, payload, fds) => {
  noFds(fds, "DEVICE_FEATURE");
  const m = DeviceFeature.decodeRequest(payload);
  const f = FEATURES[m.feature];
  if (!f) throw new VfioUserError(Errno.ENOTSUP, `DEVICE_FEATURE: no feature ${m.feature}`);
  const asked = m.ops & (GET | SET);
  if ((asked & ~f.ops) !== 0) {
    throw new VfioUserError(Errno.EINVAL, `DEVICE_FEATURE ${m.feature}: unsupported operation`);
  }
  if (m.ops & FeatureFlags.PROBE) return echo(m);
  return f.run(s, m);
};

/** MIG_DATA_READ (spec: in PRE_COPY and STOP_COPY; a short reply ends the data). */
export const migDataRead: Handler = (s, payload, fds) => {
  noFds(fds, "MIG_DATA_READ");
  const req = MigDataRead.decodeRequest(payload);
  if (req.size > s.clientMaxXfer) {
    throw new VfioUserError(Errno.E2BIG, `MIG_DATA_READ of ${req.size} bytes`);
  }
  return { payload: MigDataRead.encodeReply({ data: s.host.migration.read(req.size) }) };
};

/** MIG_DATA_WRITE (spec: in RESUMING). */
export const migDataWrite: Handler = (s, payload, fds) => {
  noFds(fds, "MIG_DATA_WRITE");
  const req = MigDataWrite.decodeRequest(payload);
  if (req.data.length > s.options.maxDataXferSize) {
    throw new VfioUserError(Errno.E2BIG, `MIG_DATA_WRITE of ${req.data.length} bytes`);
  }
  s.host.migration.write(req.data);
  return { payload: MigDataWrite.encodeReply() };
};
