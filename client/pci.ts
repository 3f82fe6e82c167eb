/**
 * PCI configuration space through REGION_READ / REGION_WRITE on region 7, as a VMM sees it:
 * register helpers, the capability-list walk, BAR sizing.
 *
 * @module
 */
import type { VfioUserClient } from "./client.ts";
import { RegionIndex } from "../protocol/region_info.ts";
import { le } from "./util.ts";

/** Type 0 header offsets. */
export const PciReg = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  ROM_ADDRESS: 0x30,
  CAPABILITIES_POINTER: 0x34,
  INTERRUPT_PIN: 0x3d,
} as const;

/** COMMAND bits. */
export const PciCommand = {
  MEMORY_SPACE: 1 << 1,
  BUS_MASTER: 1 << 2,
  INTX_DISABLE: 1 << 10,
} as const;

/** STATUS bits. */
export const PciStatus = {
  INTERRUPT_STATUS: 1 << 3,
  CAPABILITIES_LIST: 1 << 4,
} as const;

/** Capability ids. */
export const PciCapId = { VENDOR: 0x09, MSIX: 0x11 } as const;

/** MSI-X Message Control bits. */
export const MsixControl = { ENABLE: 1 << 15, FUNCTION_MASK: 1 << 14, TABLE_SIZE: 0x7ff } as const;

/** One capability found in the list. */
export interface PciCapability {
  id: number;
  /** Offset of its header in config space. */
  offset: number;
}

/**
 * Walks the capability list of a 256-byte config-space image. Throws on a list that leaves the
 * header area, is misaligned or loops (bounded to 48 entries, like Linux).
 */
export function walkCapabilities(cfg: Uint8Array): PciCapability[] {
  const caps: PciCapability[] = [];
  if ((le.u16(cfg, PciReg.STATUS) & PciStatus.CAPABILITIES_LIST) === 0) return caps;
  let ptr = cfg[PciReg.CAPABILITIES_POINTER];
  const seen = new Set<number>();
  while (ptr !== 0) {
    if (ptr < 0x40 || ptr > 0xfc || ptr % 4 !== 0) {
      throw new Error(`capability pointer 0x${ptr.toString(16)} is invalid`);
    }
    if (seen.has(ptr) || seen.size >= 48) throw new Error("capability list loops");
    seen.add(ptr);
    caps.push({ id: cfg[ptr], offset: ptr });
    ptr = cfg[ptr + 1];
  }
  return caps;
}

/** Config-space accessors over one client. */
export class PciConfig {
  readonly client: VfioUserClient;

  constructor(client: VfioUserClient) {
    this.client = client;
  }

  /** Reads `count` bytes at `offset`. */
  read(offset: number, count: number): Promise<Uint8Array> {
    return this.client.regionRead(RegionIndex.CONFIG, offset, count);
  }

  /** Writes `data` at `offset` (a non-posted write, like QEMU's config writes). */
  write(offset: number, data: Uint8Array): Promise<void> {
    return this.client.regionWrite(RegionIndex.CONFIG, offset, data);
  }

  /** Reads a byte. */
  async read8(offset: number): Promise<number> {
    return (await this.read(offset, 1))[0];
  }

  /** Reads a little-endian u16. */
  async read16(offset: number): Promise<number> {
    return le.u16(await this.read(offset, 2));
  }

  /** Reads a little-endian u32. */
  async read32(offset: number): Promise<number> {
    return le.u32(await this.read(offset, 4));
  }

  /** Writes a little-endian u16. */
  write16(offset: number, value: number): Promise<void> {
    return this.write(offset, le.b16(value));
  }

  /** Writes a little-endian u32. */
  write32(offset: number, value: number): Promise<void> {
    return this.write(offset, le.b32(value));
  }

  /** Reads the whole 256-byte header + capability area. */
  image(): Promise<Uint8Array> {
    return this.read(0, 256);
  }

  /** The capability list. */
  async capabilities(): Promise<PciCapability[]> {
    return walkCapabilities(await this.image());
  }

  /** Sets and clears COMMAND bits; returns the new value read back. */
  async updateCommand(set: number, clear = 0): Promise<number> {
    const cmd = await this.read16(PciReg.COMMAND);
    await this.write16(PciReg.COMMAND, (cmd | set) & ~clear & 0xffff);
    return this.read16(PciReg.COMMAND);
  }

  /**
   * Sizes the 32-bit BAR register at `offset` the way firmware does: saves it, writes all ones,
   * reads back, restores. Returns the read-back value (0 for an unimplemented BAR).
   */
  async sizeBar(offset: number, probe = 0xffff_ffff): Promise<number> {
    const saved = await this.read32(offset);
    await this.write32(offset, probe);
    const mask = await this.read32(offset);
    await this.write32(offset, saved);
    return mask;
  }

  /** Sets or clears MSI-X Enable (and clears Function Mask) in the MSI-X capability. */
  async setMsixEnabled(enabled: boolean): Promise<void> {
    const cap = (await this.capabilities()).find((c) => c.id === PciCapId.MSIX);
    if (!cap) throw new Error("no MSI-X capability");
    const ctl = await this.read16(cap.offset + 2);
    const next = enabled
      ? (ctl | MsixControl.ENABLE) & ~MsixControl.FUNCTION_MASK
      : ctl & ~MsixControl.ENABLE;
    await this.write16(cap.offset + 2, next & 0xffff);
  }
}
