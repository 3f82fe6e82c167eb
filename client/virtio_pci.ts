/**
 * The modern virtio-over-PCI transport as a driver sees it (virtio 1.x §4.1): the capability walk
 * that locates the virtio structures in the BARs. The numbers are in spec/virtio.ts.
 *
 * @module
 */
import type { VfioUserClient } from "./client.ts";
import { CapId, ConfigReg, Msix } from "../spec/pci.ts";
import { CapType, PciCapField } from "../spec/virtio.ts";
import { PciConfig, walkCapabilities } from "./pci.ts";
import { le } from "./util.ts";

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
    const at = cap.offset;
    if (cap.id === CapId.MSIX) {
      const vectors = (le.u16(cfg, at + Msix.CONTROL) & Msix.CONTROL_TABLE_SIZE) + 1;
      msix = { capOffset: at, vectors };
      continue;
    }
    if (cap.id !== CapId.VENDOR) continue;
    const type = cfg[at + PciCapField.CFG_TYPE];
    if (found[type]) continue; // the first of each type is the preferred one (§4.1.4.1)
    found[type] = {
      bar: cfg[at + PciCapField.BAR],
      offset: le.u32(cfg, at + PciCapField.OFFSET),
      length: le.u32(cfg, at + PciCapField.LENGTH),
      capOffset: at,
      multiplier: type === CapType.NOTIFY
        ? le.u32(cfg, at + PciCapField.NOTIFY_OFF_MULTIPLIER)
        : undefined,
    };
  }
  const need = (t: number, name: string) => {
    const c = found[t];
    if (!c) throw new Error(`virtio ${name} capability not found`);
    return c;
  };
  const notify = need(CapType.NOTIFY, "notify");
  return {
    vendorId: le.u16(cfg, ConfigReg.VENDOR_ID),
    deviceId: le.u16(cfg, ConfigReg.DEVICE_ID),
    common: need(CapType.COMMON, "common"),
    notify: { ...notify, multiplier: notify.multiplier ?? 0 },
    isr: need(CapType.ISR, "ISR"),
    device: need(CapType.DEVICE, "device"),
    msix,
  };
}
