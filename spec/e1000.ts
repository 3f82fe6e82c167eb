/**
 * Register offsets and bit definitions of the Intel 82540EM, from the PCI/PCI-X Family of Gigabit
 * Ethernet Controllers Software Developer's Manual (8254x SDM), chapter 13 ("Register
 * Descriptions") and chapter 3 ("Receive and Transmit Description"); shared by the device model
 * (devices/e1000) and the client's test driver.
 *
 * @module
 */

/** PCI identity of the 82540EM desktop adapter (SDM §4.1, table 4-2 / 5-1). */
export const PCI_ID = {
  VENDOR: 0x8086,
  DEVICE: 0x100e,
  SUBSYSTEM_VENDOR: 0x8086,
  SUBSYSTEM: 0x001e,
  REVISION: 0x03,
  /** Network controller, Ethernet. */
  CLASS: 0x020000,
} as const;

/** Size of the memory BAR (register space, SDM §13.1). */
export const MMIO_SIZE = 0x20000;
/** Size of the I/O BAR (IOADDR/IODATA window, SDM §13.2.1). */
export const IO_SIZE = 0x40;

/** Register byte offsets (SDM table 13-2). */
export const R = {
  CTRL: 0x0000,
  STATUS: 0x0008,
  EECD: 0x0010,
  EERD: 0x0014,
  CTRL_EXT: 0x0018,
  FLA: 0x001c,
  MDIC: 0x0020,
  FCAL: 0x0028,
  FCAH: 0x002c,
  FCT: 0x0030,
  VET: 0x0038,
  ICR: 0x00c0,
  ITR: 0x00c4,
  ICS: 0x00c8,
  IMS: 0x00d0,
  IMC: 0x00d8,
  RCTL: 0x0100,
  FCTTV: 0x0170,
  TXCW: 0x0178,
  RXCW: 0x0180,
  TCTL: 0x0400,
  TIPG: 0x0410,
  AIT: 0x0458,
  LEDCTL: 0x0e00,
  PBA: 0x1000,
  FCRTL: 0x2160,
  FCRTH: 0x2168,
  RDFH: 0x2410,
  RDFT: 0x2418,
  RDFHS: 0x2420,
  RDFTS: 0x2428,
  RDFPC: 0x2430,
  RDBAL: 0x2800,
  RDBAH: 0x2804,
  RDLEN: 0x2808,
  RDH: 0x2810,
  RDT: 0x2818,
  RDTR: 0x2820,
  RXDCTL: 0x2828,
  RADV: 0x282c,
  RSRPD: 0x2c00,
  TXDMAC: 0x3000,
  TDFH: 0x3410,
  TDFT: 0x3418,
  TDFHS: 0x3420,
  TDFTS: 0x3428,
  TDFPC: 0x3430,
  TDBAL: 0x3800,
  TDBAH: 0x3804,
  TDLEN: 0x3808,
  TDH: 0x3810,
  TDT: 0x3818,
  TIDV: 0x3820,
  TXDCTL: 0x3828,
  TADV: 0x382c,
  TSPMT: 0x3830,
  RXCSUM: 0x5000,
  MTA: 0x5200,
  RA: 0x5400,
  VFTA: 0x5600,
  WUC: 0x5800,
  WUFC: 0x5808,
  WUS: 0x5810,
  MANC: 0x5820,
  IPAV: 0x5838,
  IP4AT: 0x5840,
  IP6AT: 0x5880,
  WUPL: 0x5900,
  WUPM: 0x5a00,
  FFLT: 0x5f00,
} as const;

/** Device Control register bits (SDM §13.4.1). */
export const CTRL = {
  FD: 1 << 0,
  LRST: 1 << 3,
  ASDE: 1 << 5,
  SLU: 1 << 6,
  ILOS: 1 << 7,
  SPEED_1000: 2 << 8,
  FRCSPD: 1 << 11,
  FRCDPX: 1 << 12,
  RST: 1 << 26,
  RFCE: 1 << 27,
  TFCE: 1 << 28,
  VME: 1 << 30,
  PHY_RST: 1 << 31,
} as const;

/** Device Status register bits (SDM §13.4.2). */
export const STATUS = {
  FD: 1 << 0,
  LU: 1 << 1,
  TXOFF: 1 << 4,
  SPEED_1000: 2 << 6,
  ASDV_1000: 2 << 8,
} as const;

/** EEPROM/Flash Control bits (SDM §13.4.3). */
export const EECD = {
  SK: 1 << 0,
  CS: 1 << 1,
  DI: 1 << 2,
  DO: 1 << 3,
  FWE_MASK: 3 << 4,
  REQ: 1 << 6,
  GNT: 1 << 7,
  PRES: 1 << 8,
  /** Set: 256-word EEPROM; clear: 64 words (Microwire, SDM §5.3). */
  SIZE: 1 << 9,
} as const;

/** EEPROM Read register fields (SDM §13.4.4). */
export const EERD = {
  START: 1 << 0,
  DONE: 1 << 4,
  ADDR_SHIFT: 8,
  DATA_SHIFT: 16,
} as const;

/** MDI Control register fields (SDM §13.4.7). */
export const MDIC = {
  DATA_MASK: 0xffff,
  REG_SHIFT: 16,
  REG_MASK: 0x1f << 16,
  PHY_SHIFT: 21,
  PHY_MASK: 0x1f << 21,
  OP_WRITE: 1 << 26,
  OP_READ: 2 << 26,
  READY: 1 << 28,
  INT_EN: 1 << 29,
  ERROR: 1 << 30,
} as const;

/** Interrupt cause bits, shared by ICR/ICS/IMS/IMC (SDM §13.4.17). */
export const ICR = {
  TXDW: 1 << 0,
  TXQE: 1 << 1,
  LSC: 1 << 2,
  RXSEQ: 1 << 3,
  RXDMT0: 1 << 4,
  RXO: 1 << 6,
  RXT0: 1 << 7,
  MDAC: 1 << 9,
  RXCFG: 1 << 10,
  TXD_LOW: 1 << 15,
  SRPD: 1 << 16,
} as const;

/** Causes the 82540EM implements; others are reserved and read 0. */
export const ICR_VALID = 0x0001f6df;

/** Receive Control bits and fields (SDM §13.4.22). */
export const RCTL = {
  EN: 1 << 1,
  SBP: 1 << 2,
  UPE: 1 << 3,
  MPE: 1 << 4,
  LPE: 1 << 5,
  LBM_MASK: 3 << 6,
  RDMTS_SHIFT: 8,
  MO_SHIFT: 12,
  BAM: 1 << 15,
  BSIZE_SHIFT: 16,
  VFE: 1 << 18,
  BSEX: 1 << 25,
  SECRC: 1 << 26,
} as const;

/** Transmit Control bits (SDM §13.4.33). */
export const TCTL = {
  EN: 1 << 1,
  PSP: 1 << 3,
} as const;

/** Receive Checksum Control bits (SDM §13.4.40). */
export const RXCSUM = {
  PCSS_MASK: 0xff,
  IPOFLD: 1 << 8,
  TUOFLD: 1 << 9,
} as const;

/** Receive Address High: Address Valid (SDM §13.5.2). */
export const RAH_AV = 1 << 31;

/** Number of Receive Address register pairs. */
export const RA_ENTRIES = 16;
/** Number of Multicast Table Array / VLAN Filter Table words. */
export const TABLE_WORDS = 128;

/** Size of every receive and transmit descriptor (SDM §3.2.3, §3.3.3). */
export const DESC_SIZE = 16;

/** Transmit descriptor command bits, byte 11 of every format (SDM §3.3.3.1, §3.3.7.1). */
export const TXD_CMD = {
  EOP: 1 << 0,
  IFCS: 1 << 1,
  /** Legacy: insert checksum. Context: TUCMD.TCP (TCP, not UDP). */
  IC: 1 << 2,
  /** Extended: TCP segmentation enable (TUCMD.TSE / DCMD.TSE). */
  TSE: 1 << 2,
  RS: 1 << 3,
  DEXT: 1 << 5,
  VLE: 1 << 6,
  IDE: 1 << 7,
} as const;

/** Context descriptor TUCMD bits (SDM §3.3.6.1). */
export const TUCMD = {
  TCP: 1 << 0,
  IP: 1 << 1,
  TSE: 1 << 2,
} as const;

/** Descriptor type (DTYP, bits 23:20 of dword 2) of extended descriptors (SDM §3.3.5). */
export const DTYP = { CONTEXT: 0, DATA: 1 } as const;

/** Transmit descriptor status bits, byte 12 (SDM §3.3.3.2). */
export const TXD_STA = { DD: 1 << 0 } as const;

/** Data descriptor POPTS bits, byte 13 (SDM §3.3.7.2). */
export const POPTS = { IXSM: 1 << 0, TXSM: 1 << 1 } as const;

/** Receive descriptor status bits (SDM §3.2.3.1). */
export const RXD_STA = {
  DD: 1 << 0,
  EOP: 1 << 1,
  IXSM: 1 << 2,
  VP: 1 << 3,
  TCPCS: 1 << 5,
  IPCS: 1 << 6,
  PIF: 1 << 7,
} as const;

/** Receive descriptor error bits (SDM §3.2.3.2). */
export const RXD_ERR = {
  CE: 1 << 0,
  TCPE: 1 << 5,
  IPE: 1 << 6,
  RXE: 1 << 7,
} as const;

/** Ethernet sizes. */
export const ETH = {
  ADDR: 6,
  HEADER: 14,
  /** Shortest frame without FCS (shorter ones are padded). */
  MIN_FRAME: 60,
  FCS: 4,
  VLAN_TAG: 4,
  /** Longest standard frame with FCS, without a VLAN tag. */
  MAX_STD: 1518,
  /** Longest frame with Long Packet Enable (SDM §3.2.2: up to 16 KB). */
  MAX_JUMBO: 16384,
} as const;

/** Statistics registers (SDM §13.7), 32-bit unless listed as 64-bit pairs. */
export const STATS = {
  CRCERRS: 0x4000,
  ALGNERRC: 0x4004,
  SYMERRS: 0x4008,
  RXERRC: 0x400c,
  MPC: 0x4010,
  SCC: 0x4014,
  ECOL: 0x4018,
  MCC: 0x401c,
  LATECOL: 0x4020,
  COLC: 0x4028,
  DC: 0x4030,
  TNCRS: 0x4034,
  SEC: 0x4038,
  CEXTERR: 0x403c,
  RLEC: 0x4040,
  XONRXC: 0x4048,
  XONTXC: 0x404c,
  XOFFRXC: 0x4050,
  XOFFTXC: 0x4054,
  FCRUC: 0x4058,
  PRC64: 0x405c,
  PRC127: 0x4060,
  PRC255: 0x4064,
  PRC511: 0x4068,
  PRC1023: 0x406c,
  PRC1522: 0x4070,
  GPRC: 0x4074,
  BPRC: 0x4078,
  MPRC: 0x407c,
  GPTC: 0x4080,
  GORC: 0x4088,
  GOTC: 0x4090,
  RNBC: 0x40a0,
  RUC: 0x40a4,
  RFC: 0x40a8,
  ROC: 0x40ac,
  RJC: 0x40b0,
  MGTPRC: 0x40b4,
  MGTPDC: 0x40b8,
  MGTPTC: 0x40bc,
  TOR: 0x40c0,
  TOT: 0x40c8,
  TPR: 0x40d0,
  TPT: 0x40d4,
  PTC64: 0x40d8,
  PTC127: 0x40dc,
  PTC255: 0x40e0,
  PTC511: 0x40e4,
  PTC1023: 0x40e8,
  PTC1522: 0x40ec,
  MPTC: 0x40f0,
  BPTC: 0x40f4,
  TSCTC: 0x40f8,
  TSCTFC: 0x40fc,
} as const;
