/**
 * A vfio-user client library (the VMM's side; client/README.md): the connection and one method per
 * command ({@link VfioUserClient}), DMA serving from client-side guest RAM (plain or memfd),
 * eventfd interrupts, PCI config space, virtio-blk and e1000 drivers, migration, and the protocol
 * and hardware numbers a client passes around (re-exported from protocol/ and spec/, where they
 * are defined once). Every wait is bounded; every error carries an errno.
 *
 * @module
 */
export {
  type ClientMessage,
  type ClientOptions,
  type DmaMapArgs,
  type DmaStats,
  type DmaWriteReplyShape,
  type MultiWrite,
  type RequestOptions,
  type SetIrqsArgs,
  VfioUserClient,
} from "./client.ts";
export { type ClientDmaMap, ClientDmaMaps, type DmaLookup } from "./dma_maps.ts";
export {
  ClientClosedError,
  Errno,
  ErrnoError,
  VfioUserRequestError,
  WaitTimeoutError,
} from "./errors.ts";
export { EventFd } from "./eventfd.ts";
export { DeviceInterrupts, type InterruptMode } from "./interrupts.ts";
export { GuestArena } from "./guest_arena.ts";
export { ArrayRam, type GuestRam, MemfdRam } from "./guest_ram.ts";
export { type PciCapability, PciConfig, walkCapabilities } from "./pci.ts";
export {
  isListening,
  listDir,
  openFds,
  readLink,
  readProcFile,
  type UnixSocketRow,
  unixSockets,
} from "./proc.ts";
export { DEFAULT_TIMEOUT_MS, le, pollUntil, randomBytes, sleep, withTimeout } from "./util.ts";
export {
  decodeVersionReply,
  encodeVersionPayload,
  QEMU_CAPS_JSON,
  QEMU_VERSION_MESSAGE_SIZE,
  type VersionReply,
} from "./version.ts";
export { probeVirtioPci, type VirtioCapLocation, type VirtioPciLayout } from "./virtio_pci.ts";
export {
  type BlkCompletion,
  type BlkRequest,
  BlkStatusError,
  VirtioBlkDriver,
  type VirtioBlkDriverOptions,
} from "./virtio_driver.ts";
// The numbers a client passes around, defined once in protocol/ and spec/.
export { DmaMapFlags } from "../protocol/dma.ts";
export { IrqIndex, IrqInfoFlags, IrqSetFlags } from "../protocol/irq.ts";
export { RegionIndex, RegionInfoFlags } from "../protocol/region_info.ts";
/** PCI config-space numbers (spec/pci.ts): `pci.ConfigReg.COMMAND`, `pci.CapId.MSIX`, ... */
export * as pci from "../spec/pci.ts";
/** virtio numbers (spec/virtio.ts): `virtio.Status.DRIVER_OK`, `virtio.CommonCfg`, ... */
export * as virtio from "../spec/virtio.ts";
/** virtio-blk numbers (spec/virtio_blk.ts): `virtioBlk.ReqType.IN`, `virtioBlk.BlkStatus.OK`, ... */
export * as virtioBlk from "../spec/virtio_blk.ts";
export {
  DeviceMigration,
  DeviceState,
  dirtyPages,
  migrate,
  type MigrateOptions,
  type MigrationReport,
} from "./migration.ts";
export { E1000Driver, type E1000DriverOptions } from "./e1000_driver.ts";
/** 82540EM numbers (spec/e1000.ts): `e1000.R.RDT`, `e1000.STATS.RNBC`, ... */
export * as e1000 from "../spec/e1000.ts";
