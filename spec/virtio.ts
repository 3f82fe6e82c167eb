/**
 * Numbers of the virtio 1.x specification: what a virtio device (devices/virtio/) and its driver
 * (client/, the device tests) share. Section numbers refer to virtio 1.2.
 *
 * @module
 */

/** Device status bits (virtio 1.x §2.1). */
export const Status = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;

/** Reserved (device-independent) feature bits (virtio 1.x §6), as bit numbers. */
export const FeatureBit = {
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
} as const;

/** `1n << BigInt(bit)`: the feature mask of one bit number. */
export function feature(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** "No MSI-X vector" for config_msix_vector / queue_msix_vector (§4.1.5.1.2). */
export const NO_VECTOR = 0xffff;

/** ISR status bits (§4.1.4.5). */
export const Isr = {
  QUEUE: 1,
  CONFIG: 2,
} as const;

/** Split virtqueue descriptor flags (§2.7.5). */
export const DescFlag = {
  NEXT: 1,
  WRITE: 2,
  INDIRECT: 4,
} as const;

/** Avail ring flag: the driver asks for no interrupts (§2.7.7). */
export const AVAIL_F_NO_INTERRUPT = 1;

/** Largest split virtqueue size (§2.7). */
export const MAX_QUEUE_SIZE = 32768;

/** Offsets in the common configuration structure, virtio_pci_common_cfg (§4.1.4.3). */
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
  /** 64-bit addresses, written as two 32-bit halves (low first). */
  QUEUE_DESC: 0x20,
  QUEUE_DRIVER: 0x28,
  QUEUE_DEVICE: 0x30,
} as const;

/** Field offsets of a virtio_pci_cap in config space, from the capability's start (§4.1.4). */
export const PciCapField = {
  CFG_TYPE: 3,
  BAR: 4,
  OFFSET: 8,
  LENGTH: 12,
  /** virtio_pci_notify_cap only. */
  NOTIFY_OFF_MULTIPLIER: 16,
} as const;

/** Virtio PCI capability cfg_type values (§4.1.4). */
export const CapType = {
  COMMON: 1,
  NOTIFY: 2,
  ISR: 3,
  DEVICE: 4,
  PCI_CFG: 5,
} as const;

/** PCI vendor id of virtio devices and the base of modern device ids (§4.1.2). */
export const VIRTIO_PCI_VENDOR = 0x1af4;
/** Modern PCI device id = this + virtio device id (§4.1.2). */
export const VIRTIO_PCI_DEVICE_BASE = 0x1040;
