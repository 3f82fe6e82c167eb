/**
 * `vfud probe SOCKET`: connects to a vfio-user server as a client (the in-repo client library,
 * client/) and reports what it offers: the negotiated version and capabilities, device
 * info, every region with its flags and sparse-mmap areas, every IRQ index, and the decoded
 * PCI config space. It only reads: no DMA map, no IRQ set-up, no write, no reset.
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
  /** What the device says about itself (capacity, MAC), read without side effects. */
  deviceInfo?: ProbedDevice;
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
export async function probe(socketPath: string, timeoutMs = 5000): Promise<ProbeReport> {
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

const PROBE_USAGE = `Usage: vfud probe [--json] [--timeout=MS] SOCKET-PATH

Connects to the vfio-user server listening on SOCKET-PATH and prints the negotiated protocol
version and capabilities, device info, regions (flags, sparse mmap areas), IRQ indexes and the
decoded PCI config space (ids, class, BARs, capabilities incl. virtio ones), and what the device
says about itself: a virtio-blk disk's capacity, an e1000's MAC address and link. Read-only.
A server that serves one client at a time refuses the probe while another client is connected.`;

/** `vfud probe ...`: returns the exit status (0 ok, 1 probe failed, 2 usage). */
export async function probeMain(args: string[]): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        json: { type: "boolean" },
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
    const report = await probe(positionals[0], timeout);
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
