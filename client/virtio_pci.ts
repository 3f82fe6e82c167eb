/**
 * The modern virtio-over-PCI transport as a driver sees it (virtio 1.x §4.1): register and
 * status numbers, and the capability walk that locates the virtio structures in the BARs.
 *
 * @module
 */
import type { VfioUserClient } from "./client.ts";
import { PciCapId, PciConfig, PciReg, walkCapabilities } from "./pci.ts";
import { le } from "./util.ts";

/** virtio_pci_cap cfg_type values (§4.1.4). */
export const VirtioCapType = { COMMON: 1, NOTIFY: 2, ISR: 3, DEVICE: 4, PCI_CFG: 5 } as const;

/** device_status bits (§2.1). */
export const VirtioStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;

/** Offsets in the common configuration structure (§4.1.4.3). */
export const CommonCfg = {
  DEVICE_FEATURE_SELECT: 0x00,
  DEVICE_FEATURE: 0x04,
  DRIVER_FEATURE_SELECT: 0x08,
  DRIVER_FEATURE: 0x0c,
  CONFIG_MSIX_VECTOR: 0x10,
  NUM_QUEUES: 0x12,
  DEVICE_STATUS: 0x14,
  CONFIG_GENERATION: 0x15,
  QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18,
  QUEUE_MSIX_VECTOR: 0x1a,
  QUEUE_ENABLE: 0x1c,
  QUEUE_NOTIFY_OFF: 0x1e,
  QUEUE_DESC: 0x20,
  QUEUE_DRIVER: 0x28,
  QUEUE_DEVICE: 0x30,
} as const;

/** Feature bit numbers used by the driver. */
export const VirtioFeature = {
  BLK_SEG_MAX: 2,
  BLK_RO: 5,
  BLK_BLK_SIZE: 6,
  BLK_FLUSH: 9,
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  VERSION_1: 32,
} as const;

/** Where a virtio structure lives: BAR (= vfio-user region index), offset, length. */
export interface VirtioCapLocation {
  bar: number;
  offset: number;
  length: number;
  /** Offset of the capability in config space. */
  capOffset: number;
}

/** What the capability walk found. */
export interface VirtioPciLayout {
  vendorId: number;
  deviceId: number;
  common: VirtioCapLocation;
  notify: VirtioCapLocation & { multiplier: number };
  isr: VirtioCapLocation;
  device: VirtioCapLocation;
  /** Offset of the MSI-X capability, if any, and its vector count. */
  msix?: { capOffset: number; vectors: number };
}

/** Reads config space and locates the virtio structures (§4.1.4). */
export async function probeVirtioPci(client: VfioUserClient): Promise<VirtioPciLayout> {
  const cfg = await new PciConfig(client).image();
  const found: Partial<Record<number, VirtioCapLocation & { multiplier?: number }>> = {};
  let msix: VirtioPciLayout["msix"];
  for (const cap of walkCapabilities(cfg)) {
    if (cap.id === PciCapId.MSIX) {
      msix = { capOffset: cap.offset, vectors: (le.u16(cfg, cap.offset + 2) & 0x7ff) + 1 };
      continue;
    }
    if (cap.id !== PciCapId.VENDOR) continue;
    const type = cfg[cap.offset + 3];
    if (found[type]) continue; // the first of each type is the preferred one (§4.1.4.1)
    found[type] = {
      bar: cfg[cap.offset + 4],
      offset: le.u32(cfg, cap.offset + 8),
      length: le.u32(cfg, cap.offset + 12),
      capOffset: cap.offset,
      multiplier: type === VirtioCapType.NOTIFY ? le.u32(cfg, cap.offset + 16) : undefined,
    };
  }
  const need = (t: number, name: string) => {
    const c = found[t];
    if (!c) throw new Error(`virtio ${name} capability not found`);
    return c;
  };
  const notify = need(VirtioCapType.NOTIFY, "notify");
  return {
    vendorId: le.u16(cfg, PciReg.VENDOR_ID),
    deviceId: le.u16(cfg, PciReg.DEVICE_ID),
    common: need(VirtioCapType.COMMON, "common"),
    notify: { ...notify, multiplier: notify.multiplier ?? 0 },
    isr: need(VirtioCapType.ISR, "ISR"),
    device: need(VirtioCapType.DEVICE, "device"),
    msix,
  };
}
