/**
 * Register offsets and bit definitions of the type 0 configuration header, the capability list
 * and the MSI-X capability: the numbers a PCI function (pci/, devices/) and its driver (client/,
 * tools/) share. Section numbers refer to the PCI Local Bus Specification 3.0 ("PCI 3.0") unless
 * stated otherwise.
 *
 * @module
 */

/** Size of conventional configuration space (PCI 3.0 §6.1). */
export const CONFIG_SPACE_SIZE = 256;

/** Offsets of the type 0 header registers (PCI 3.0 §6.1, Figure 6-1). */
export const ConfigReg = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  /** 3 bytes: prog-if @0x09, sub-class @0x0a, base class @0x0b. */
  CLASS_CODE: 0x09,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  /** BAR i lives at BAR0 + 4 * i (§6.2.5.1). */
  BAR0: 0x10,
  CARDBUS_CIS: 0x28,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  /** Expansion ROM base address (§6.2.5.2). */
  ROM_ADDRESS: 0x30,
  CAPABILITIES_POINTER: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
  MIN_GNT: 0x3e,
  MAX_LAT: 0x3f,
} as const;

/** Number of BAR slots in a type 0 header. */
export const BAR_COUNT = 6;

/** Offset of the first byte after the predefined header: capabilities start here (§6.7). */
export const CAPABILITIES_START = 0x40;

/** COMMAND register bits (PCI 3.0 §6.2.2, Figure 6-2). */
export const PciCommand = {
  IO_SPACE: 1 << 0,
  MEMORY_SPACE: 1 << 1,
  BUS_MASTER: 1 << 2,
  SPECIAL_CYCLES: 1 << 3,
  MWI_ENABLE: 1 << 4,
  VGA_PALETTE_SNOOP: 1 << 5,
  PARITY_ERROR_RESPONSE: 1 << 6,
  SERR_ENABLE: 1 << 8,
  FAST_BACK_TO_BACK: 1 << 9,
  INTX_DISABLE: 1 << 10,
} as const;

/** STATUS register bits (PCI 3.0 §6.2.3, Figure 6-3). */
export const PciStatus = {
  /** Read-only; reflects the function's INTx state (set by the framework). */
  INTERRUPT_STATUS: 1 << 3,
  /** Read-only; set when the capability list at 0x34 is valid. */
  CAPABILITIES_LIST: 1 << 4,
  CAPABLE_66MHZ: 1 << 5,
  FAST_BACK_TO_BACK: 1 << 7,
  MASTER_DATA_PARITY_ERROR: 1 << 8,
  SIGNALED_TARGET_ABORT: 1 << 11,
  RECEIVED_TARGET_ABORT: 1 << 12,
  RECEIVED_MASTER_ABORT: 1 << 13,
  SIGNALED_SYSTEM_ERROR: 1 << 14,
  DETECTED_PARITY_ERROR: 1 << 15,
} as const;

/** STATUS error bits: read, and cleared by writing 1 (§6.2.3 "write 1 to clear"). */
export const STATUS_W1C = PciStatus.MASTER_DATA_PARITY_ERROR | PciStatus.SIGNALED_TARGET_ABORT |
  PciStatus.RECEIVED_TARGET_ABORT | PciStatus.RECEIVED_MASTER_ABORT |
  PciStatus.SIGNALED_SYSTEM_ERROR |
  PciStatus.DETECTED_PARITY_ERROR;

/** Low bits of a BAR (PCI 3.0 §6.2.5.1, Figures 6-5 and 6-6). */
export const BarBits = {
  /** Bit 0: 1 = I/O space BAR. */
  IO_SPACE: 0x1,
  /** Bits 2:1 of a memory BAR = 10b: 64-bit BAR. */
  MEM_TYPE_64: 0x4,
  /** Bit 3 of a memory BAR. */
  PREFETCHABLE: 0x8,
  /** Read-only low bits of a memory BAR. */
  MEM_FLAGS_MASK: 0xf,
  /** Read-only low bits of an I/O BAR (bit 1 reserved). */
  IO_FLAGS_MASK: 0x3,
} as const;

/** Capability IDs used by the framework (PCI Code and ID Assignment spec, §2). */
export const CapId = {
  MSI: 0x05,
  VENDOR: 0x09,
  PCI_EXPRESS: 0x10,
  MSIX: 0x11,
} as const;

/** MSI-X capability layout (PCI 3.0 §6.8.2, Figure 6-10). */
export const Msix = {
  /** Length of the capability structure in bytes. */
  CAP_SIZE: 12,
  /** Message Control (16 bits) relative to the capability. */
  CONTROL: 0x02,
  /** Table Offset/Table BIR (32 bits). */
  TABLE: 0x04,
  /** PBA Offset/PBA BIR (32 bits). */
  PBA: 0x08,
  /** Message Control bits 10:0: table size N - 1 (read-only, §6.8.2.3). */
  CONTROL_TABLE_SIZE: 0x07ff,
  /** Message Control bit 14: Function Mask (read/write, §6.8.2.3). */
  CONTROL_FUNCTION_MASK: 1 << 14,
  /** Message Control bit 15: MSI-X Enable (read/write, §6.8.2.3). */
  CONTROL_ENABLE: 1 << 15,
  /** Bits 2:0 of the Table/PBA registers: BAR indicator (§6.8.2.4, §6.8.2.5). */
  BIR_MASK: 0x7,
  /** Size of one MSI-X table entry (§6.8.2, Figure 6-11). */
  ENTRY_SIZE: 16,
  /** Largest table size the 11-bit field can encode. */
  MAX_VECTORS: 2048,
} as const;

/** Size in bytes of the Pending Bit Array for `vectors` vectors: whole QWORDs (§6.8.2.10). */
export function pbaSize(vectors: number): number {
  return Math.ceil(vectors / 64) * 8;
}
