/**
 * Decoding of a PCI type-0 configuration space image for `vfud probe`: identity, class, BARs
 * and the capability lists (standard and extended), with virtio-pci and MSI-X capabilities
 * taken apart. Pure functions over bytes.
 *
 * @module
 */
import { BAR_COUNT, BarBits, CapId, CONFIG_SPACE_SIZE, ConfigReg, Msix } from "../spec/pci.ts";
import { walkCapabilities } from "../client/pci.ts";
import { CapType, PciCapField, VIRTIO_PCI_DEVICE_BASE, VIRTIO_PCI_VENDOR } from "../spec/virtio.ts";

/** One BAR as the config space declares it (size comes from the region info). */
export interface DecodedBar {
  index: number;
  kind: "unused" | "io" | "memory32" | "memory64";
  prefetchable: boolean;
  /** Address programmed in the register(s) (0 until the guest assigns one). */
  address: bigint;
  /** Region size (from DEVICE_GET_REGION_INFO), when known. */
  size?: bigint;
}

/** One capability of the standard (0x34) or extended (0x100) list. */
export interface DecodedCapability {
  offset: number;
  id: number;
  name: string;
  /** Decoded fields of known capabilities (MSI-X, virtio, MSI, PCIe, vendor-specific). */
  details?: Record<string, number | string | boolean>;
}

/** A decoded config space. */
export interface DecodedConfig {
  vendorId: number;
  deviceId: number;
  vendorName?: string;
  deviceName?: string;
  command: number;
  status: number;
  revision: number;
  /** Base class, subclass, programming interface. */
  classCode: { base: number; sub: number; progIf: number; name: string };
  headerType: number;
  subsystemVendorId: number;
  subsystemId: number;
  interruptLine: number;
  /** 0 none, 1-4 INTA-INTD. */
  interruptPin: number;
  bars: DecodedBar[];
  capabilities: DecodedCapability[];
  extendedCapabilities: DecodedCapability[];
}

const VENDORS: Record<number, string> = {
  0x1af4: "Red Hat, Inc. (virtio)",
  0x1b36: "Red Hat, Inc. (QEMU)",
  0x8086: "Intel Corporation",
};

const VIRTIO_DEVICES: Record<number, string> = {
  1: "network",
  2: "block",
  3: "console",
  4: "entropy",
  5: "balloon",
  8: "SCSI host",
  9: "9P transport",
  16: "GPU",
  18: "input",
  19: "vsock",
  26: "file system",
};

const INTEL_DEVICES: Record<number, string> = {
  0x100e: "82540EM Gigabit Ethernet (e1000)",
  0x10d3: "82574L Gigabit Ethernet (e1000e)",
};

const CLASSES: Record<number, [string, Record<number, string>]> = {
  0x00: ["unclassified", {}],
  0x01: ["mass storage", { 0x00: "SCSI", 0x01: "IDE", 0x06: "SATA", 0x08: "NVM", 0x80: "other" }],
  0x02: ["network", { 0x00: "Ethernet", 0x80: "other" }],
  0x03: ["display", { 0x00: "VGA", 0x80: "other" }],
  0x04: ["multimedia", {}],
  0x05: ["memory", {}],
  0x06: ["bridge", {}],
  0x07: ["communication", { 0x00: "serial" }],
  0x08: ["system peripheral", {}],
  0x09: ["input", {}],
  0x0c: ["serial bus", { 0x03: "USB" }],
  0xff: ["unassigned", {}],
};

const CAP_NAMES: Record<number, string> = {
  0x01: "Power Management",
  0x05: "MSI",
  0x09: "Vendor Specific",
  0x10: "PCI Express",
  0x11: "MSI-X",
  0x12: "SATA",
  0x13: "Advanced Features",
};

const EXT_CAP_NAMES: Record<number, string> = {
  0x0001: "Advanced Error Reporting",
  0x0003: "Device Serial Number",
  0x000b: "Vendor Specific",
  0x000e: "ARI",
  0x0010: "SR-IOV",
  0x0018: "LTR",
};

const VIRTIO_CFG_TYPES: Record<number, string> = {
  1: "common",
  2: "notify",
  3: "isr",
  4: "device",
  5: "pci-cfg",
  8: "shared-memory",
  9: "vendor",
};

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number) => (u16(b, o) | (u16(b, o + 2) << 16)) >>> 0;

/** Vendor and device names where known. */
export function deviceNames(vendor: number, device: number): { vendor?: string; device?: string } {
  let name: string | undefined;
  if (vendor === VIRTIO_PCI_VENDOR) {
    const modern = device >= VIRTIO_PCI_DEVICE_BASE;
    // Transitional ids start at 0x1000 for device id 1 (virtio 1.x §4.1.2.3).
    const id = modern
      ? device - VIRTIO_PCI_DEVICE_BASE
      : device >= 0x1000
      ? device - 0x1000 + 1
      : -1;
    const kind = VIRTIO_DEVICES[id];
    if (kind) name = `virtio ${kind}${modern ? " (modern)" : " (transitional)"}`;
  } else if (vendor === 0x8086) {
    name = INTEL_DEVICES[device];
  }
  return { vendor: VENDORS[vendor], device: name };
}

/** Name of a class code, e.g. "mass storage / SCSI". */
export function className(base: number, sub: number): string {
  const c = CLASSES[base];
  if (!c) return `class 0x${base.toString(16)}`;
  const s = c[1][sub];
  return s ? `${c[0]} / ${s}` : c[0];
}

function decodeBars(cfg: Uint8Array, sizes: readonly bigint[]): DecodedBar[] {
  const bars: DecodedBar[] = [];
  for (let i = 0; i < BAR_COUNT; i++) {
    const reg = u32(cfg, ConfigReg.BAR0 + 4 * i);
    const size = sizes[i];
    if (reg & BarBits.IO_SPACE) {
      bars.push({
        index: i,
        kind: "io",
        prefetchable: false,
        address: BigInt((reg & ~BarBits.IO_FLAGS_MASK) >>> 0),
        size,
      });
      continue;
    }
    const is64 = (reg & 0x6) === BarBits.MEM_TYPE_64 && i < BAR_COUNT - 1;
    const low = BigInt((reg & ~BarBits.MEM_FLAGS_MASK) >>> 0);
    const address = is64 ? low | (BigInt(u32(cfg, ConfigReg.BAR0 + 4 * (i + 1))) << 32n) : low;
    const used = (size ?? 0n) > 0n || reg !== 0;
    bars.push({
      index: i,
      kind: !used ? "unused" : is64 ? "memory64" : "memory32",
      prefetchable: used && (reg & BarBits.PREFETCHABLE) !== 0,
      address,
      size,
    });
    if (is64 && used) i++; // the upper half is not a BAR of its own
  }
  return bars;
}

function bir(v: number): string {
  return `BAR${v & Msix.BIR_MASK} + 0x${((v & ~Msix.BIR_MASK) >>> 0).toString(16)}`;
}

function capDetails(cfg: Uint8Array, off: number, id: number, vendor: number) {
  switch (id) {
    case CapId.MSIX: {
      const ctl = u16(cfg, off + Msix.CONTROL);
      return {
        tableSize: (ctl & Msix.CONTROL_TABLE_SIZE) + 1,
        enabled: (ctl & Msix.CONTROL_ENABLE) !== 0,
        functionMask: (ctl & Msix.CONTROL_FUNCTION_MASK) !== 0,
        table: bir(u32(cfg, off + Msix.TABLE)),
        pba: bir(u32(cfg, off + Msix.PBA)),
      };
    }
    case CapId.MSI: {
      const ctl = u16(cfg, off + 2);
      return {
        enabled: (ctl & 1) !== 0,
        vectors: 1 << ((ctl >> 1) & 7),
        address64: (ctl & 0x80) !== 0,
        perVectorMask: (ctl & 0x100) !== 0,
      };
    }
    case CapId.PCI_EXPRESS:
      return { version: u16(cfg, off + 2) & 0xf, portType: (u16(cfg, off + 2) >> 4) & 0xf };
    case CapId.VENDOR: {
      const len = cfg[off + 2];
      if (vendor !== VIRTIO_PCI_VENDOR || len < 16) return { length: len };
      const type = cfg[off + PciCapField.CFG_TYPE];
      const d: Record<string, number | string | boolean> = {
        virtio: VIRTIO_CFG_TYPES[type] ?? `type ${type}`,
        bar: cfg[off + PciCapField.BAR],
        offset: u32(cfg, off + PciCapField.OFFSET),
        length: u32(cfg, off + PciCapField.LENGTH),
      };
      if (type === CapType.NOTIFY && len >= 20) {
        d.notifyOffMultiplier = u32(cfg, off + PciCapField.NOTIFY_OFF_MULTIPLIER);
      }
      return d;
    }
  }
  return undefined;
}

/** The standard capability list, decoded (a bad pointer ends it: this describes, not judges). */
function standardCaps(cfg: Uint8Array, vendor: number): DecodedCapability[] {
  return walkCapabilities(cfg, true).map(({ id, offset }) => {
    const details = capDetails(cfg, offset, id, vendor);
    return {
      offset,
      id,
      name: CAP_NAMES[id] ?? `capability 0x${id.toString(16)}`,
      ...(details ? { details } : {}),
    };
  });
}

/** Walks the extended capability list at 0x100 (when the image has it). */
function extendedCaps(cfg: Uint8Array): DecodedCapability[] {
  const caps: DecodedCapability[] = [];
  let ptr = CONFIG_SPACE_SIZE;
  const seen = new Set<number>();
  while (ptr >= CONFIG_SPACE_SIZE && ptr + 4 <= cfg.length && !seen.has(ptr) && seen.size < 480) {
    seen.add(ptr);
    const h = u32(cfg, ptr);
    if (h === 0 || h === 0xffffffff) break;
    const id = h & 0xffff;
    caps.push({
      offset: ptr,
      id,
      name: EXT_CAP_NAMES[id] ?? `extended capability 0x${id.toString(16)}`,
      details: { version: (h >>> 16) & 0xf },
    });
    ptr = (h >>> 20) & ~3;
  }
  return caps;
}

/**
 * Decodes a config space image (at least 64 bytes; 256 for capabilities, 4096 for extended
 * ones). `barSizes` are the sizes of regions 0-5 from DEVICE_GET_REGION_INFO.
 */
export function decodeConfig(cfg: Uint8Array, barSizes: readonly bigint[] = []): DecodedConfig {
  if (cfg.length < 64) throw new Error(`config space image of ${cfg.length} bytes (< 64)`);
  const vendorId = u16(cfg, ConfigReg.VENDOR_ID);
  const deviceId = u16(cfg, ConfigReg.DEVICE_ID);
  const names = deviceNames(vendorId, deviceId);
  const cc = ConfigReg.CLASS_CODE;
  const progIf = cfg[cc], sub = cfg[cc + 1], base = cfg[cc + 2];
  return {
    vendorId,
    deviceId,
    ...(names.vendor ? { vendorName: names.vendor } : {}),
    ...(names.device ? { deviceName: names.device } : {}),
    command: u16(cfg, ConfigReg.COMMAND),
    status: u16(cfg, ConfigReg.STATUS),
    revision: cfg[ConfigReg.REVISION_ID],
    classCode: { base, sub, progIf, name: className(base, sub) },
    headerType: cfg[ConfigReg.HEADER_TYPE],
    subsystemVendorId: u16(cfg, ConfigReg.SUBSYSTEM_VENDOR_ID),
    subsystemId: u16(cfg, ConfigReg.SUBSYSTEM_ID),
    interruptLine: cfg[ConfigReg.INTERRUPT_LINE],
    interruptPin: cfg[ConfigReg.INTERRUPT_PIN],
    bars: decodeBars(cfg, barSizes),
    capabilities: standardCaps(cfg, vendorId),
    extendedCapabilities: cfg.length > CONFIG_SPACE_SIZE ? extendedCaps(cfg) : [],
  };
}
