/**
 * Where the virtio structures live (virtio 1.x §4.1.4) and the PCI description of a virtio
 * function built from it.
 *
 * BAR 4 (mem32, 16 KiB, not prefetchable) holds the four structures, 4 KiB apart. MSI-X table
 * and PBA sit in BAR 1 (mem32), handled by the PCI framework. The virtio BAR is 32-bit on purpose:
 * SeaBIOS reaches a 64-bit BAR placed above 4 GiB only through a VIRTIO_PCI_CAP_PCI_CFG window,
 * which would need config-space interception.
 *
 * @module
 */
import type { CapabilitySpec, PciConfigSpec } from "../../pci/spec.ts";
import { CapId } from "../../spec/pci.ts";
import { CapType, VIRTIO_PCI_DEVICE_BASE, VIRTIO_PCI_VENDOR } from "../../spec/virtio.ts";

/** BAR index of the virtio structures. */
export const VIRTIO_BAR = 4;
/** BAR index of the MSI-X table and PBA. */
export const MSIX_BAR = 1;
/** Size of the virtio BAR. */
export const VIRTIO_BAR_SIZE = 0x4000;

/** Offsets of the structures inside {@link VIRTIO_BAR}. */
export const Region = {
  COMMON: 0x0000,
  /** sizeof(virtio_pci_common_cfg) incl. the 1.2+ fields up to admin_queue_num (§4.1.4.3). */
  COMMON_LEN: 0x40,
  ISR: 0x1000,
  ISR_LEN: 1,
  DEVICE: 0x2000,
  DEVICE_MAX: 0x1000,
  NOTIFY: 0x3000,
  NOTIFY_MAX: 0x1000,
} as const;

/** Bytes between two queues' notify addresses; queue_notify_off is the queue index (§4.1.4.4). */
export const NOTIFY_OFF_MULTIPLIER = 4;

/** PCI class code of a virtio function when the device model gives none. */
const CLASS_OTHER = 0xff0000;

/** What the transport needs to describe a virtio function. */
export interface VirtioPciIdentity {
  /** Virtio device id (§5), e.g. 2 for block. */
  deviceId: number;
  /** 24-bit PCI class code. */
  classCode?: number;
  /** Number of virtqueues. */
  numQueues: number;
  /** Length of the device-specific configuration structure. */
  deviceConfigLength: number;
}

/** Builds a virtio_pci_cap (§4.1.4) body: everything after cap_vndr and cap_next. */
function virtioCap(
  cfgType: number,
  offset: number,
  length: number,
  extra?: number,
): CapabilitySpec {
  const body = new Uint8Array(extra === undefined ? 14 : 18);
  const view = new DataView(body.buffer);
  body[0] = body.length + 2; // cap_len
  body[1] = cfgType;
  body[2] = VIRTIO_BAR;
  body[3] = 0; // id
  view.setUint32(6, offset, true);
  view.setUint32(10, length, true);
  if (extra !== undefined) view.setUint32(14, extra, true); // notify_off_multiplier
  return { id: CapId.VENDOR, body };
}

/** MSI-X placement for `vectors` vectors: table at 0, PBA at 0x800 or after the table. */
function msixLayout(vectors: number): { size: number; pbaOffset: number } {
  const pbaOffset = Math.max(0x800, Math.ceil((vectors * 16) / 8) * 8);
  const end = pbaOffset + Math.ceil(vectors / 64) * 8;
  let size = 0x1000;
  while (size < end) size *= 2;
  return { size, pbaOffset };
}

/** Number of MSI-X vectors: one per queue plus one for configuration changes. */
export function msixVectors(numQueues: number): number {
  return numQueues + 1;
}

/** The PCI description of a modern-only virtio function (§4.1.2, §4.1.4). */
export function virtioPciSpec(id: VirtioPciIdentity): PciConfigSpec {
  if (id.numQueues < 1 || id.numQueues * NOTIFY_OFF_MULTIPLIER > Region.NOTIFY_MAX) {
    throw new RangeError(`unsupported number of virtqueues: ${id.numQueues}`);
  }
  if (id.deviceConfigLength > Region.DEVICE_MAX) throw new RangeError("device config too large");
  const vectors = msixVectors(id.numQueues);
  const msix = msixLayout(vectors);
  const caps = [
    virtioCap(CapType.COMMON, Region.COMMON, Region.COMMON_LEN),
    virtioCap(CapType.ISR, Region.ISR, Region.ISR_LEN),
    virtioCap(CapType.DEVICE, Region.DEVICE, Math.max(id.deviceConfigLength, 4)),
    virtioCap(
      CapType.NOTIFY,
      Region.NOTIFY,
      id.numQueues * NOTIFY_OFF_MULTIPLIER,
      NOTIFY_OFF_MULTIPLIER,
    ),
  ];
  return {
    vendorId: VIRTIO_PCI_VENDOR,
    deviceId: VIRTIO_PCI_DEVICE_BASE + id.deviceId,
    subsystemVendorId: VIRTIO_PCI_VENDOR,
    subsystemId: id.deviceId,
    revision: 1,
    classCode: id.classCode ?? CLASS_OTHER,
    bars: [
      { index: MSIX_BAR, size: msix.size, kind: "mem32" },
      { index: VIRTIO_BAR, size: VIRTIO_BAR_SIZE, kind: "mem32" },
    ],
    capabilities: caps,
    msix: { vectors, bar: MSIX_BAR, tableOffset: 0, pbaOffset: msix.pbaOffset },
    interruptPin: 1,
  };
}
