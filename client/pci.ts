/**
 * PCI configuration space through REGION_READ / REGION_WRITE on region 7, as a VMM sees it:
 * register helpers, the capability-list walk, BAR sizing.
 *
 * @module
 */
import type { VfioUserClient } from "./client.ts";
import { RegionIndex } from "../protocol/region_info.ts";
import {
  CAPABILITIES_START,
  CapId,
  CONFIG_SPACE_SIZE,
  ConfigReg,
  Msix,
  PciStatus,
} from "../spec/pci.ts";
import { le } from "./util.ts";

/** One capability found in the list. */
export interface PciCapability {
  id: number;
  /** Offset of its header in config space. */
  offset: number;
}

/**
 * Walks the capability list of a config-space image (bounded to 48 entries, like Linux). Throws
 * on a list that leaves the header area, is misaligned or loops; with `lenient` (for describing
 * a device rather than testing it) masks the reserved low pointer bits (PCI 3.0 §6.7) and stops
 * there instead.
 */
export function walkCapabilities(cfg: Uint8Array, lenient = false): PciCapability[] {
  const caps: PciCapability[] = [];
  if ((le.u16(cfg, ConfigReg.STATUS) & PciStatus.CAPABILITIES_LIST) === 0) return caps;
  const next = (p: number) => lenient ? p & ~3 : p;
  const end = Math.min(cfg.length, CONFIG_SPACE_SIZE) - 4;
  const seen = new Set<number>();
  for (let ptr = next(cfg[ConfigReg.CAPABILITIES_POINTER]); ptr !== 0;) {
    const why = ptr < CAPABILITIES_START || ptr > end || ptr % 4 !== 0
      ? `capability pointer 0x${ptr.toString(16)} is invalid`
      : seen.has(ptr) || seen.size >= 48
      ? "capability list loops"
      : undefined;
    if (why && lenient) break;
    if (why) throw new Error(why);
    seen.add(ptr);
    caps.push({ id: cfg[ptr], offset: ptr });
    ptr = next(cfg[ptr + 1]);
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
    return this.read(0, CONFIG_SPACE_SIZE);
  }

  /** The capability list. */
  async capabilities(): Promise<PciCapability[]> {
    return walkCapabilities(await this.image());
  }

  /** Sets and clears COMMAND bits; returns the new value read back. */
  async updateCommand(set: number, clear = 0): Promise<number> {
    const cmd = await this.read16(ConfigReg.COMMAND);
    await this.write16(ConfigReg.COMMAND, (cmd | set) & ~clear & 0xffff);
    return this.read16(ConfigReg.COMMAND);
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
    const cap = (await this.capabilities()).find((c) => c.id === CapId.MSIX);
    if (!cap) throw new Error("no MSI-X capability");
    const ctl = await this.read16(cap.offset + Msix.CONTROL);
    const next = enabled
      ? (ctl | Msix.CONTROL_ENABLE) & ~Msix.CONTROL_FUNCTION_MASK
      : ctl & ~Msix.CONTROL_ENABLE;
    await this.write16(cap.offset + Msix.CONTROL, next & 0xffff);
  }
}
