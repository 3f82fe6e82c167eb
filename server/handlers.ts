/**
 * Command handlers, one per command number (a table, not a switch). Each decodes its payload
 * with the pure codecs of protocol/, acts on the session, and returns the reply payload; errors
 * are thrown as `VfioUserError` and turned into error replies by the session alone.
 *
 * Handlers that keep received fds take them out of the `fds` array (`fds.splice(0)`); whatever
 * is left there is closed by the session after the handler, on every path.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { closeFd } from "../sys/ffi.ts";
import { Errno, VfioUserError } from "../protocol/errors.ts";
import { Command, type Header } from "../protocol/header.ts";
import { DeviceGetInfo, DeviceInfoFlags, DeviceReset } from "../protocol/device_info.ts";
import { DeviceGetRegionInfo } from "../protocol/region_info.ts";
import { DeviceGetRegionIoFds } from "../protocol/region_io_fds.ts";
import { DmaMap, DmaMapFlags, DmaUnmap, DmaUnmapFlags } from "../protocol/dma.ts";
import {
  DeviceGetIrqInfo,
  DeviceSetIrqs,
  IRQ_INDEX_COUNT,
  IrqIndex,
  IrqSetFlags,
} from "../protocol/irq.ts";
import { RegionRead, RegionWrite, RegionWriteMulti } from "../protocol/region_rw.ts";
import { negotiate } from "../protocol/negotiate.ts";
import { nameOf } from "../protocol/wire.ts";
import type { SessionMemory } from "../dma/memory.ts";
import type { DmaTable } from "../dma/table.ts";
import type { DeviceHost } from "./host.ts";
import type { SessionOptions } from "./session.ts";
import {
  DEFAULT_MAX_BITMAP,
  deviceFeature,
  DIRTY_PGSIZE,
  migDataRead,
  migDataWrite,
} from "./migration_handlers.ts";

/** What a handler returns: the reply payload, fds to pass with it, and a hook run after the
 * reply went out (or was dropped: NO_REPLY, connection gone). */
export interface HandlerResult {
  payload?: Uint8Array;
  fds?: number[];
  afterSend?: () => void;
}

/** The parts of a session handlers use. */
export interface SessionState {
  readonly host: DeviceHost;
  readonly options: SessionOptions;
  readonly dma: DmaTable;
  readonly memory: SessionMemory;
  readonly log: Logger;
  negotiated: boolean;
  clientMaxXfer: number;
  /** Dirty logging limits negotiated in VERSION (`migration`: pgsize, max_bitmap_size). */
  dirtyLimits: { pgsize: bigint; maxBitmapSize: number };
  enableMessageDma(): void;
  openTwinSocket(): number;
}

/** A command handler. */
export type Handler = (
  s: SessionState,
  payload: Uint8Array,
  fds: number[],
  header: Header,
) => HandlerResult | Promise<HandlerResult>;

const EMPTY: HandlerResult = {};

/** "ACTION_TRIGGER", "DATA_EVENTFD": the name of one IrqSetFlags bit. */
function flagName(bit: number): string {
  return nameOf(IrqSetFlags, bit) ?? `0x${bit.toString(16)}`;
}

function noFds(fds: number[], what: string): void {
  if (fds.length) throw new VfioUserError(Errno.EINVAL, `${what} takes no fds`);
}

function version(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  noFds(fds, "VERSION");
  if (s.negotiated) throw new VfioUserError(Errno.EINVAL, "VERSION sent twice");
  const n = negotiate(payload, {
    maxMsgFds: s.options.maxMsgFds,
    maxDataXferSize: s.options.maxDataXferSize,
    maxDmaMaps: s.options.maxDmaMaps,
    pgsizes: 4096n,
    writeMultiple: true,
    twinSocket: true,
    migration: { pgsize: DIRTY_PGSIZE, maxBitmapSize: DEFAULT_MAX_BITMAP },
  });
  s.clientMaxXfer = n.session.maxDataXferSize;
  const mig = n.session.migration;
  if (mig) s.dirtyLimits = { pgsize: BigInt(mig.pgsize), maxBitmapSize: mig.maxBitmapSize };
  s.negotiated = true;
  const twin = n.session.twinSocket ? [s.openTwinSocket()] : [];
  s.enableMessageDma();
  s.log.info(
    "negotiated vfio-user {major}.{minor}: max_data_xfer_size {xfer}, client max_msg_fds " +
      "{clientFds}, max_dma_maps {maxDmaMaps}, twin socket {twin}, migration {migration}",
    {
      major: n.session.major,
      minor: n.session.minor,
      xfer: n.session.maxDataXferSize,
      clientFds: n.session.clientMaxMsgFds,
      maxDmaMaps: n.session.maxDmaMaps,
      twin: n.session.twinSocket ? "yes" : "no",
      migration: n.session.migration ? "yes" : "no",
    },
  );
  // The client's end of the twin socket is ours to close once the reply carried it.
  return { payload: n.payload, fds: twin, afterSend: () => twin.forEach(closeFd) };
}

function dmaMap(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  const req = DmaMap.decodeRequest(payload);
  if (fds.length > 1) throw new VfioUserError(Errno.EINVAL, `DMA_MAP with ${fds.length} fds`);
  const [fd] = fds.splice(0);
  const r = s.dma.map(req.address, req.size, fd === undefined ? 0n : req.offset, req.flags, fd);
  if (r.unsealed) {
    s.log.warn(
      "DMA_MAP [0x{iova}, +0x{size}): its fd is not sealed against shrinking (F_SEAL_SHRINK); " +
        "reaching it through DMA messages instead of mmap (a memfd with sealing gives zero copy)",
      { iova: req.address.toString(16), size: req.size.toString(16) },
    );
  }
  s.log.debug("DMA map 0x{iova}+0x{size} {prot}, {how}", {
    iova: req.address.toString(16),
    size: req.size.toString(16),
    prot: `${req.flags & DmaMapFlags.READ ? "r" : "-"}${req.flags & DmaMapFlags.WRITE ? "w" : "-"}`,
    how: fd === undefined
      ? "no fd: message-based DMA"
      : r.unsealed
      ? "unsealed fd: message-based DMA"
      : `mmap of the client's fd at offset 0x${req.offset.toString(16)}`,
  });
  return EMPTY;
}

function dmaUnmap(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  noFds(fds, "DMA_UNMAP");
  const req = DmaUnmap.decodeRequest(payload);
  if (req.flags & DmaUnmapFlags.ALL) {
    if (req.address !== 0n || req.size !== 0n) {
      throw new VfioUserError(Errno.EINVAL, "DMA_UNMAP ALL with an address range");
    }
    s.dma.clear();
    s.log.debug("DMA unmap all");
  } else {
    s.dma.unmap(req.address, req.size);
    s.log.debug("DMA unmap 0x{iova}+0x{size}", {
      iova: req.address.toString(16),
      size: req.size.toString(16),
    });
  }
  return { payload: DmaUnmap.encodeReply(req) };
}

function getInfo(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  noFds(fds, "DEVICE_GET_INFO");
  DeviceGetInfo.decodeRequest(payload);
  return {
    payload: DeviceGetInfo.encodeReply({
      flags: DeviceInfoFlags.RESET | DeviceInfoFlags.PCI,
      numRegions: s.host.regions.length,
      numIrqs: IRQ_INDEX_COUNT,
    }),
  };
}

function getRegionInfo(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  noFds(fds, "DEVICE_GET_REGION_INFO");
  const req = DeviceGetRegionInfo.decodeRequest(payload);
  const r = s.host.regions[req.index];
  if (!r) throw new VfioUserError(Errno.EINVAL, `region index ${req.index}`);
  const info = { index: r.index, flags: r.flags, size: BigInt(r.size), offset: 0n, caps: [] };
  return { payload: DeviceGetRegionInfo.encodeReply(info, req.argsz) };
}

function getRegionIoFds(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  noFds(fds, "DEVICE_GET_REGION_IO_FDS");
  const req = DeviceGetRegionIoFds.decodeRequest(payload);
  const r = s.host.regions[req.index];
  if (!r || r.size === 0) throw new VfioUserError(Errno.EINVAL, `region index ${req.index}`);
  // No ioeventfds are offered: every access comes as a message (spec allows count 0).
  return {
    payload: DeviceGetRegionIoFds.encodeReply({ index: req.index, subRegions: [] }, req.argsz),
  };
}

function getIrqInfo(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  noFds(fds, "DEVICE_GET_IRQ_INFO");
  const req = DeviceGetIrqInfo.decodeRequest(payload);
  if (req.index >= IRQ_INDEX_COUNT) {
    throw new VfioUserError(Errno.EINVAL, `IRQ index ${req.index}`);
  }
  const irqs = s.host.irqs;
  return {
    payload: DeviceGetIrqInfo.encodeReply({
      index: req.index,
      flags: irqs.infoFlags(req.index),
      count: irqs.count(req.index),
    }),
  };
}

function setIrqs(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  const req = DeviceSetIrqs.decodeRequest(payload);
  const passed = fds.splice(0);
  s.host.irqs.set({ ...req, fds: passed });
  s.log.debug("set IRQs {index} {start}..{end}: {action} {data}", {
    index: nameOf(IrqIndex, req.index) ?? `index ${req.index}`,
    start: req.start,
    end: req.start + req.count - 1,
    action: flagName(req.flags & IrqSetFlags.ACTION_TYPE_MASK),
    data: req.flags & IrqSetFlags.DATA_EVENTFD
      ? `with ${passed.length} eventfd(s)`
      : flagName(req.flags & IrqSetFlags.DATA_TYPE_MASK),
  });
  return EMPTY;
}

function regionRead(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  noFds(fds, "REGION_READ");
  const req = RegionRead.decodeRequest(payload);
  if (req.count > s.options.maxDataXferSize) {
    throw new VfioUserError(Errno.E2BIG, `REGION_READ of ${req.count} bytes`);
  }
  const data = new Uint8Array(req.count);
  s.host.read(req.region, checkedOffset(req.offset), data);
  return { payload: RegionRead.encodeReply({ ...req, data }) };
}

function regionWrite(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  noFds(fds, "REGION_WRITE");
  const req = RegionWrite.decodeRequest(payload);
  s.host.write(req.region, checkedOffset(req.offset), req.data);
  return { payload: RegionWrite.encodeReply({ ...req, count: req.data.length }) };
}

function regionWriteMulti(s: SessionState, payload: Uint8Array, fds: number[]): HandlerResult {
  noFds(fds, "REGION_WRITE_MULTI");
  const writes = RegionWriteMulti.decodeRequest(payload);
  for (const w of writes) s.host.write(w.region, checkedOffset(w.offset), w.data);
  return { payload: RegionWriteMulti.encodeReply({ wrCnt: writes.length }) };
}

async function deviceReset(s: SessionState, payload: Uint8Array, fds: number[]) {
  noFds(fds, "DEVICE_RESET");
  DeviceReset.decodeRequest(payload);
  s.log.info("device reset by the client");
  await s.host.reset();
  return EMPTY;
}

function checkedOffset(offset: bigint): number {
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VfioUserError(Errno.EINVAL, `region offset 0x${offset.toString(16)}`);
  }
  return Number(offset);
}

/** Handlers by command number; commands absent here are answered ENOTSUP. */
export const commandHandlers: Readonly<Record<number, Handler>> = {
  [Command.VERSION]: version,
  [Command.DMA_MAP]: dmaMap,
  [Command.DMA_UNMAP]: dmaUnmap,
  [Command.DEVICE_GET_INFO]: getInfo,
  [Command.DEVICE_GET_REGION_INFO]: getRegionInfo,
  [Command.DEVICE_GET_REGION_IO_FDS]: getRegionIoFds,
  [Command.DEVICE_GET_IRQ_INFO]: getIrqInfo,
  [Command.DEVICE_SET_IRQS]: setIrqs,
  [Command.REGION_READ]: regionRead,
  [Command.REGION_WRITE]: regionWrite,
  [Command.DEVICE_RESET]: deviceReset,
  [Command.REGION_WRITE_MULTI]: regionWriteMulti,
  [Command.DEVICE_FEATURE]: deviceFeature,
  [Command.MIG_DATA_READ]: migDataRead,
  [Command.MIG_DATA_WRITE]: migDataWrite,
};
