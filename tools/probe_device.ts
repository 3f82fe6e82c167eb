/**
 * `vfud probe`: what a device says about itself beyond PCI, read without side effects (plain
 * register reads, never a write or a request that needs DMA): a virtio-blk disk's capacity and
 * geometry from its device configuration structure (virtio 1.x §5.2.4), an e1000's station
 * address (RAL0/RAH0) and link state (STATUS.LU).
 *
 * A virtio-blk serial number is not in a register: the device gives it in answer to a GET_ID
 * request, which needs a driver, a virtqueue and guest memory; tools/probe_serial.ts reads it.
 *
 * @module
 */
import type { DecodedConfig } from "./pci_decode.ts";

/** Reads `count` bytes of region `index` at `offset`. */
export type RegionReader = (index: number, offset: number, count: number) => Promise<Uint8Array>;

/** The device section of a probe report. */
export interface ProbedDevice {
  kind: string;
  fields: Record<string, string | number | bigint | boolean>;
  /** Fields the probe did not read, with the reason (a virtio-blk `serial`). */
  unread?: Record<string, string>;
}

const VIRTIO_VENDOR = 0x1af4, VIRTIO_BLK_MODERN = 0x1042;
const INTEL = 0x8086, E1000_82540EM = 0x100e;

/** virtio-blk: the first 36 bytes of struct virtio_blk_config (§5.2.4). */
async function virtioBlk(
  cfg: DecodedConfig,
  read: RegionReader,
): Promise<ProbedDevice | undefined> {
  const cap = cfg.capabilities.find((c) => c.details?.virtio === "device");
  const d = cap?.details;
  if (!d || typeof d.bar !== "number" || typeof d.offset !== "number") return undefined;
  const len = Math.min(Number(d.length ?? 0), 36);
  if (len < 8) return undefined;
  const b = await read(d.bar, d.offset, len);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const capacity = v.getBigUint64(0, true);
  const fields: ProbedDevice["fields"] = {
    capacitySectors: capacity,
    capacityBytes: capacity * 512n,
  };
  if (len >= 24) {
    fields.sizeMax = v.getUint32(8, true);
    fields.segMax = v.getUint32(12, true);
    fields.blkSize = v.getUint32(20, true);
  }
  if (len >= 36) fields.numQueues = v.getUint16(34, true);
  return { kind: "virtio-blk", fields };
}

/** e1000: receive address 0 and the link bit of STATUS, both plain reads of BAR0. */
async function e1000(read: RegionReader): Promise<ProbedDevice> {
  const u32 = async (off: number) => {
    const b = await read(0, off, 4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  };
  const ral = await u32(0x5400), rah = await u32(0x5404), status = await u32(0x0008);
  const mac = [ral, ral >>> 8, ral >>> 16, ral >>> 24, rah, rah >>> 8].map((x) =>
    (x & 0xff).toString(16).padStart(2, "0")
  ).join(":");
  return {
    kind: "e1000",
    fields: { mac, macValid: (rah & 0x8000_0000) !== 0, linkUp: (status & 2) !== 0 },
  };
}

/** The device section for the devices it knows (by PCI ids), else undefined. */
export async function probeDevice(
  cfg: DecodedConfig,
  read: RegionReader,
): Promise<ProbedDevice | undefined> {
  if (cfg.vendorId === VIRTIO_VENDOR && cfg.deviceId === VIRTIO_BLK_MODERN) {
    return await virtioBlk(cfg, read);
  }
  if (cfg.vendorId === INTEL && cfg.deviceId === E1000_82540EM) return await e1000(read);
  return undefined;
}

/** "virtio-blk: capacity 2048 sectors (1 MiB), ..." */
export function formatDevice(d: ProbedDevice): string {
  const f = d.fields;
  if (d.kind === "virtio-blk") {
    const bytes = f.capacityBytes as bigint;
    const human = bytes >= 1n << 30n
      ? `${Number(bytes) / 2 ** 30} GiB`
      : bytes >= 1n << 20n
      ? `${Number(bytes) / 2 ** 20} MiB`
      : `${bytes} bytes`;
    const rest = ["blkSize", "segMax", "sizeMax", "numQueues"].filter((k) => k in f)
      .map((k) => `${k} ${f[k]}`);
    // The serial comes from the device: quoted and escaped, so an empty one shows as "".
    if (typeof f.serial === "string") {
      rest.push(`serial ${JSON.stringify(f.serial)}${f.serial ? "" : " (empty)"}`);
    } else if (d.unread?.serial) rest.push(`serial not read (${d.unread.serial})`);
    return `virtio-blk: capacity ${f.capacitySectors} sectors (${human})` +
      (rest.length ? `, ${rest.join(", ")}` : "");
  }
  return `${d.kind}: ${Object.entries(f).map(([k, v]) => `${k} ${v}`).join(", ")}`;
}
