/**
 * Plain-data description of a PCI function that a device model declares. The framework
 * (pci/config.ts) builds the config space, BAR sizing, capability list and MSI-X structures from
 * it; devices never hand-edit config space bytes.
 *
 * @module
 */

/** One BAR. Sizes are powers of two (>= 16 for memory BARs, >= 4 for I/O). */
export interface BarSpec {
  /** BAR index 0-5. A 64-bit BAR also occupies index+1. */
  index: number;
  size: number;
  kind: "mem32" | "mem64" | "io";
  prefetchable?: boolean;
}

/** A vendor-specific (id 0x09) or other capability with raw body bytes. */
export interface CapabilitySpec {
  /** Capability ID (0x09 vendor-specific, ...). */
  id: number;
  /**
   * Body bytes after the 2-byte {id, next} header. For vendor caps, body[0] is cap_len (the
   * framework fills it in) as in the virtio spec layout.
   */
  body: Uint8Array;
}

/** MSI-X: table and PBA live in a BAR and are handled by the framework. */
export interface MsixSpec {
  vectors: number;
  bar: number;
  tableOffset: number;
  pbaOffset: number;
}

/** Everything the framework needs to expose a PCI function. */
export interface PciConfigSpec {
  vendorId: number;
  deviceId: number;
  subsystemVendorId: number;
  subsystemId: number;
  revision: number;
  /** 24-bit class code: base << 16 | sub << 8 | prog-if. */
  classCode: number;
  bars: BarSpec[];
  capabilities: CapabilitySpec[];
  msix?: MsixSpec;
  /** INTx pin: 1 = INTA ... 4 = INTD, 0 = none. */
  interruptPin: number;
  /**
   * Size of the config-space region (region 7) reported to the client: 256 (default,
   * conventional PCI) or 4096 (PCI Express size). Only the first 256 bytes are implemented;
   * the rest reads as zero and ignores writes, which a PCIe-aware client reads as "no extended
   * capabilities" (PCIe Base spec §7.6.3: a zero header at 0x100 ends the extended list).
   */
  configSpaceSize?: 256 | 4096;
}
