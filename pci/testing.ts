/**
 * Sample specs for tests (here and in other packages' tests). Not used by production code.
 *
 * @module
 */
import type { PciConfigSpec } from "./spec.ts";

/** Little-endian bytes of a u32. */
function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
}

/**
 * A virtio-blk-like function: vendor 0x1af4 device 0x1042, class 0x010000, one prefetchable
 * mem64 BAR 4 of 0x4000, MSI-X with 2 vectors (table at 0, PBA at 0x800 of BAR 4), and two
 * virtio vendor capabilities (common cfg: 14-byte body; notify cfg: 18-byte body).
 * Resulting layout: caps at 0x40, 0x50, MSI-X at 0x64.
 */
export function sampleSpec(): PciConfigSpec {
  return {
    vendorId: 0x1af4,
    deviceId: 0x1042,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x0002,
    revision: 0x01,
    classCode: 0x010000,
    bars: [{ index: 4, size: 0x4000, kind: "mem64", prefetchable: true }],
    capabilities: [
      // cap_len (filled by the framework), cfg_type 1, bar 4, id, pad x2, offset, length
      { id: 0x09, body: Uint8Array.of(0, 1, 4, 0, 0, 0, ...le32(0x1000), ...le32(0x38)) },
      // notify cfg: + notify_off_multiplier
      {
        id: 0x09,
        body: Uint8Array.of(0, 2, 4, 0, 0, 0, ...le32(0x3000), ...le32(0x1000), ...le32(4)),
      },
    ],
    msix: { vectors: 2, bar: 4, tableOffset: 0, pbaOffset: 0x800 },
    interruptPin: 1,
  };
}
