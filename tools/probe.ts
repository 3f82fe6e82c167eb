/**
 * `vfud probe SOCKET`: connects to a vfio-user server as a client (the in-repo client library,
 * client/) and reports what it offers: the negotiated version and capabilities, device
 * info, every region with its flags and sparse-mmap areas, every IRQ index, and the decoded
 * PCI config space, and what the device says about itself (tools/probe_device.ts). All of that
 * is read from registers. A virtio-blk serial number is not in a register: for it the probe
 * drives the device for one GET_ID request and puts it back (tools/probe_serial.ts), unless
 * `registersOnly` is set.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { VfioUserClient } from "../client/mod.ts";
import { DeviceInfoFlags } from "../protocol/device_info.ts";
import { IrqIndex, IrqInfoFlags } from "../protocol/irq.ts";
import {
  DeviceGetRegionInfo,
  RegionCapId,
  RegionIndex,
  RegionInfoFlags,
  SparseMmapCap,
} from "../protocol/region_info.ts";
import { nameOf } from "../protocol/wire.ts";
import { decodeConfig, type DecodedConfig } from "./pci_decode.ts";
import { formatReport } from "./probe_format.ts";
import { type ProbedDevice, probeDevice } from "./probe_device.ts";
import { readSerial } from "./probe_serial.ts";

/** One region as the server describes it. */
export interface ProbedRegion {
  index: number;
  name: string;
  size: bigint;
  flags: string[];
  offset: bigint;
  /** Areas of the region the client may mmap (sparse-mmap capability), if any. */
  sparseMmap?: { offset: bigint; size: bigint }[];
  /** Other region capabilities by id. */
  otherCaps?: number[];
}

/** One IRQ index. */
export interface ProbedIrq {
  index: number;
  name: string;
  count: number;
  flags: string[];
}

/** Everything `vfud probe` found out. */
export interface ProbeReport {
  socket: string;
  version: { major: number; minor: number; capabilities: unknown };
  device: { flags: string[]; numRegions: number; numIrqs: number };
  regions: ProbedRegion[];
  irqs: ProbedIrq[];
  /** Config space (PCI devices); `configSize` is the config region's size. */
  config?: DecodedConfig;
  configSize?: bigint;
  /** What the device says about itself (capacity, MAC, serial). */
  deviceInfo?: ProbedDevice;
}

/** Options of {@link probe}. */
export interface ProbeOptions {
  /** Bound of every wait. Default 5000 ms. */
  timeoutMs?: number;
  /** Only read registers: no DMA map and no device writes (a virtio-blk serial is not read). */
  registersOnly?: boolean;
}

/** Names of the bits of `flags` set in `value` (unknown bits as hex). */
export function flagNames(value: number, flags: Record<string, number>): string[] {
  const out: string[] = [];
  let rest = value;
  for (const [name, bit] of Object.entries(flags)) {
    if (value & bit) {
      out.push(name);
      rest &= ~bit;
    }
  }
  if (rest) out.push(`0x${rest.toString(16)}`);
  return out;
}

async function region(client: VfioUserClient, index: number): Promise<ProbedRegion> {
  let info = await client.getRegionInfo(index);
  if (info.argsz > DeviceGetRegionInfo.SIZE) {
    info = await client.getRegionInfo(index, { argsz: info.argsz });
  }
  const r: ProbedRegion = {
    index,
    name: nameOf(RegionIndex, index) ?? `region ${index}`,
    size: info.size,
    flags: flagNames(info.flags, RegionInfoFlags),
    offset: info.offset,
  };
  for (const cap of info.caps) {
    if (cap.id === RegionCapId.SPARSE_MMAP) r.sparseMmap = SparseMmapCap.decode(cap);
    else (r.otherCaps ??= []).push(cap.id);
  }
  return r;
}

async function readConfig(client: VfioUserClient, size: bigint, chunk: number) {
  const total = Number(size > 4096n ? 4096n : size);
  const out = new Uint8Array(total);
  for (let off = 0; off < total; off += chunk) {
    out.set(await client.regionRead(RegionIndex.CONFIG, off, Math.min(chunk, total - off)), off);
  }
  return out;
}

/** Probes the server at `socketPath`. */
export async function probe(socketPath: string, opts: ProbeOptions = {}): Promise<ProbeReport> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  await using client = await VfioUserClient.connect(socketPath, { timeoutMs, serveDma: false });
  const v = await client.version();
  const info = await client.getInfo();
  const regions: ProbedRegion[] = [];
  for (let i = 0; i < info.numRegions; i++) regions.push(await region(client, i));
  const irqs: ProbedIrq[] = [];
  for (let i = 0; i < info.numIrqs; i++) {
    const irq = await client.getIrqInfo(i);
    irqs.push({
      index: i,
      name: nameOf(IrqIndex, i) ?? `irq ${i}`,
      count: irq.count,
      flags: flagNames(irq.flags, IrqInfoFlags),
    });
  }
  const report: ProbeReport = {
    socket: socketPath,
    version: { major: v.major, minor: v.minor, capabilities: v.json },
    device: {
      flags: flagNames(info.flags, DeviceInfoFlags),
      numRegions: info.numRegions,
      numIrqs: info.numIrqs,
    },
    regions,
    irqs,
  };
  const cfg = regions[RegionIndex.CONFIG];
  if (info.flags & DeviceInfoFlags.PCI && cfg && cfg.size >= 64n) {
    const xfer = v.caps?.maxDataXferSize ?? 4096;
    const image = await readConfig(client, cfg.size, Math.max(64, Math.min(xfer, 4096)));
    report.configSize = cfg.size;
    report.config = decodeConfig(image, regions.slice(0, 6).map((r) => r.size));
    const info = await probeDevice(report.config, (i, off, n) => client.regionRead(i, off, n));
    if (info) report.deviceInfo = info;
    if (info?.kind === "virtio-blk") {
      const r = opts.registersOnly
        ? { unread: "--registers-only" }
        : await readSerial(client, timeoutMs);
      if ("serial" in r) info.fields.serial = r.serial;
      else (info.unread ??= {}).serial = r.unread;
    }
  }
  return report;
}

/** JSON text of a report (u64 values as "0x..." strings). */
export function reportJson(report: ProbeReport): string {
  return JSON.stringify(
    report,
    (_k, v) => typeof v === "bigint" ? `0x${v.toString(16)}` : v,
    2,
  );
}

const PROBE_USAGE = `Usage: vfud probe [--json] [--registers-only] [--timeout=MS] SOCKET-PATH

Connects to the vfio-user server listening on SOCKET-PATH and prints the negotiated protocol
version and capabilities, device info, regions (flags, sparse mmap areas), IRQ indexes and the
decoded PCI config space (ids, class, BARs, capabilities incl. virtio ones), and what the device
says about itself: a virtio-blk disk's capacity and serial, an e1000's MAC address and link.

Everything but the serial is read from registers. The serial is the answer to a GET_ID request:
the probe maps 16 KiB of its own memory, sets the device up, sends one GET_ID, then resets the
device (status 0), restores the PCI registers it changed and unmaps. It does so only when no
driver has set the device up (status 0); otherwise the serial is reported as not read.
--registers-only skips it: no DMA map and no write at all.

vfud serves one client at a time: while a VMM is connected the probe is refused.`;

/** `vfud probe ...`: returns the exit status (0 ok, 1 probe failed, 2 usage). */
export async function probeMain(args: string[]): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        json: { type: "boolean" },
        "registers-only": { type: "boolean" },
        timeout: { type: "string", default: "5000" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    console.error(`vfud probe: ${(e as Error).message}\n${PROBE_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(PROBE_USAGE);
    return 0;
  }
  const timeout = Number(values.timeout);
  if (positionals.length !== 1 || !(timeout > 0)) {
    console.error(`vfud probe: give one socket path\n${PROBE_USAGE}`);
    return 2;
  }
  try {
    const report = await probe(positionals[0], {
      timeoutMs: timeout,
      registersOnly: values["registers-only"],
    });
    console.log(values.json ? reportJson(report) : formatReport(report));
    return 0;
  } catch (e) {
    const why = (e as Error).message;
    console.error(
      `vfud probe: ${positionals[0]}: ${why}` +
        (/closed|reset|ECONNRESET/i.test(why) ? " (is another client connected?)" : ""),
    );
    return 1;
  }
}
