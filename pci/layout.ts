/**
 * Turns a {@link PciConfigSpec} into the power-on configuration-space image and its per-byte
 * access masks. Everything guest-visible about register behaviour is decided here, as data:
 *
 * - `wmask`: bits the guest may change (new = old & ~wmask | value & wmask).
 * - `w1cmask`: bits the guest clears by writing 1 (PCI 3.0 §6.2.3, STATUS error bits).
 * - all other bits are read-only.
 *
 * BAR sizing (PCI 3.0 §6.2.5.1) falls out of the masks: only the address bits above the BAR's
 * size are writable, so writing all ones reads back ~(size - 1) | type bits.
 *
 * A bad spec is a bug in a device model, not peer input: it throws `RangeError`/`TypeError` at
 * construction time.
 *
 * @module
 */
import type { BarSpec, PciConfigSpec } from "./spec.ts";
import {
  BAR_COUNT,
  BarBits,
  CAPABILITIES_START,
  CapId,
  CONFIG_SPACE_SIZE,
  ConfigReg,
  Msix,
  pbaSize,
  PciCommand,
  PciStatus,
  STATUS_W1C,
} from "../spec/pci.ts";

/**
 * COMMAND bits this framework implements as read/write; all others are hardwired to 0
 * (§6.2.2 permits hardwiring bits for features a function does not have).
 */
export const COMMAND_WRITABLE = PciCommand.IO_SPACE | PciCommand.MEMORY_SPACE |
  PciCommand.BUS_MASTER |
  PciCommand.PARITY_ERROR_RESPONSE | PciCommand.SERR_ENABLE | PciCommand.INTX_DISABLE;

/** Where a capability landed in config space. */
export interface CapabilityPlacement {
  id: number;
  /** Offset of the capability header (ID byte). */
  offset: number;
  /** Length including the 2-byte header. */
  length: number;
}

/** The result of {@link buildLayout}. */
export interface ConfigLayout {
  /** Power-on contents of the 256-byte config space. */
  image: Uint8Array;
  /** Writable bits per byte. */
  wmask: Uint8Array;
  /** Write-1-to-clear bits per byte. */
  w1cmask: Uint8Array;
  /** Capabilities in list order (the order of `spec.capabilities`, MSI-X last). */
  capabilities: CapabilityPlacement[];
  /** Offset of the MSI-X capability, if the spec has MSI-X. */
  msixOffset?: number;
  /** Size of the config region reported to the client. */
  regionSize: number;
}

/** Size of the config-space region (region 7) for `spec`: 256 unless it asks for 4096. */
export function configRegionSize(spec: PciConfigSpec): number {
  return spec.configSpaceSize ?? CONFIG_SPACE_SIZE;
}

/** BAR declared at `index`, or undefined (also for the upper half of a 64-bit BAR). */
export function findBar(spec: PciConfigSpec, index: number): BarSpec | undefined {
  return spec.bars.find((b) => b.index === index);
}

function isPow2(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (BigInt(n) & (BigInt(n) - 1n)) === 0n;
}

function checkUint(value: number, bits: number, name: string): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new RangeError(`PCI spec: ${name} ${value} is not a ${bits}-bit unsigned integer`);
  }
}

/** Size limits per BAR kind (PCI 3.0 §6.2.5.1; I/O BARs decode at most 256 bytes). */
const BAR_LIMITS: Record<BarSpec["kind"], { min: number; max: number; slots: number }> = {
  mem32: { min: 16, max: 2 ** 31, slots: 1 },
  mem64: { min: 16, max: 2 ** 52, slots: 2 },
  io: { min: 4, max: 256, slots: 1 },
};

/** Validates a spec; throws `RangeError`/`TypeError` describing the first problem. */
export function validateSpec(spec: PciConfigSpec): void {
  checkUint(spec.vendorId, 16, "vendorId");
  checkUint(spec.deviceId, 16, "deviceId");
  checkUint(spec.subsystemVendorId, 16, "subsystemVendorId");
  checkUint(spec.subsystemId, 16, "subsystemId");
  checkUint(spec.revision, 8, "revision");
  checkUint(spec.classCode, 24, "classCode");
  if (![0, 1, 2, 3, 4].includes(spec.interruptPin)) {
    throw new RangeError(`PCI spec: interruptPin ${spec.interruptPin} not in 0..4`);
  }
  if (spec.configSpaceSize !== undefined && ![256, 4096].includes(spec.configSpaceSize)) {
    throw new RangeError(`PCI spec: configSpaceSize ${spec.configSpaceSize} not 256 or 4096`);
  }
  const used = new Array<boolean>(BAR_COUNT).fill(false);
  for (const bar of spec.bars) {
    const lim = BAR_LIMITS[bar.kind];
    if (!lim) throw new TypeError(`PCI spec: BAR kind ${bar.kind} unknown`);
    if (!Number.isInteger(bar.index) || bar.index < 0 || bar.index + lim.slots > BAR_COUNT) {
      throw new RangeError(`PCI spec: BAR index ${bar.index} invalid for ${bar.kind}`);
    }
    if (!isPow2(bar.size) || bar.size < lim.min || bar.size > lim.max) {
      throw new RangeError(`PCI spec: BAR ${bar.index} size ${bar.size} invalid for ${bar.kind}`);
    }
    if (bar.kind === "io" && bar.prefetchable) {
      throw new TypeError(`PCI spec: I/O BAR ${bar.index} cannot be prefetchable`);
    }
    for (let s = bar.index; s < bar.index + lim.slots; s++) {
      if (used[s]) throw new RangeError(`PCI spec: BAR slot ${s} declared twice`);
      used[s] = true;
    }
  }
  for (const cap of spec.capabilities) {
    checkUint(cap.id, 8, "capability id");
    if (cap.id === CapId.MSIX) {
      throw new TypeError("PCI spec: declare MSI-X through spec.msix, not as a raw capability");
    }
    if (!(cap.body instanceof Uint8Array)) throw new TypeError("PCI spec: capability body");
    if (cap.id === CapId.VENDOR && (cap.body.length < 1 || cap.body.length + 2 > 0xff)) {
      throw new RangeError(`PCI spec: vendor capability body length ${cap.body.length}`);
    }
  }
  if (spec.msix) validateMsix(spec);
}

function validateMsix(spec: PciConfigSpec): void {
  const m = spec.msix!;
  if (!Number.isInteger(m.vectors) || m.vectors < 1 || m.vectors > Msix.MAX_VECTORS) {
    throw new RangeError(`PCI spec: MSI-X vectors ${m.vectors} not in 1..${Msix.MAX_VECTORS}`);
  }
  const bar = findBar(spec, m.bar);
  if (!bar || bar.kind === "io") {
    throw new RangeError(`PCI spec: MSI-X BAR ${m.bar} is not an implemented memory BAR`);
  }
  const table = { start: m.tableOffset, end: m.tableOffset + m.vectors * Msix.ENTRY_SIZE };
  const pba = { start: m.pbaOffset, end: m.pbaOffset + pbaSize(m.vectors) };
  for (const [name, r] of [["table", table], ["PBA", pba]] as const) {
    // §6.8.2.4/§6.8.2.5: offsets are QWORD aligned (the low 3 bits hold the BIR).
    if (!Number.isSafeInteger(r.start) || r.start < 0 || r.start % 8 !== 0 || r.end > bar.size) {
      throw new RangeError(`PCI spec: MSI-X ${name} at ${r.start} misaligned or outside BAR`);
    }
    if (r.start >= 2 ** 32) throw new RangeError(`PCI spec: MSI-X ${name} offset too large`);
  }
  if (table.start < pba.end && pba.start < table.end) {
    throw new RangeError("PCI spec: MSI-X table and PBA overlap");
  }
}

/** Little-endian store of `size` bytes of `value` into `arr` at `offset`. */
function put(arr: Uint8Array, offset: number, size: number, value: number | bigint): void {
  let v = BigInt(value);
  for (let i = 0; i < size; i++, v >>= 8n) arr[offset + i] = Number(v & 0xffn);
}

/** Read-only type bits and writable address mask of a BAR, as a 64-bit quantity. */
function barBits(bar: BarSpec): { flags: number; wmask: bigint } {
  const addrMask = ~(BigInt(bar.size) - 1n);
  if (bar.kind === "io") {
    return { flags: BarBits.IO_SPACE, wmask: addrMask & 0xffff_fffcn };
  }
  const flags = (bar.kind === "mem64" ? BarBits.MEM_TYPE_64 : 0) |
    (bar.prefetchable ? BarBits.PREFETCHABLE : 0);
  const width = bar.kind === "mem64" ? 0xffff_ffff_ffff_fff0n : 0xffff_fff0n;
  return { flags, wmask: addrMask & width };
}

/**
 * Guest-writable header registers (PCI 3.0 §6.2.2-§6.2.4). Every header bit not listed here
 * (or made writable by a BAR or capability below) is read-only.
 */
const HEADER_BEHAVIOUR: readonly { offset: number; size: number; wmask: number; w1c: number }[] = [
  { offset: ConfigReg.COMMAND, size: 2, wmask: COMMAND_WRITABLE, w1c: 0 },
  { offset: ConfigReg.STATUS, size: 2, wmask: 0, w1c: STATUS_W1C },
  { offset: ConfigReg.INTERRUPT_LINE, size: 1, wmask: 0xff, w1c: 0 },
];

/** Builds the power-on image, masks and capability placement of `spec` (validating it first). */
export function buildLayout(spec: PciConfigSpec): ConfigLayout {
  validateSpec(spec);
  const image = new Uint8Array(CONFIG_SPACE_SIZE);
  const wmask = new Uint8Array(CONFIG_SPACE_SIZE);
  const w1cmask = new Uint8Array(CONFIG_SPACE_SIZE);

  // Identification and fixed header fields (§6.2.1, §6.2.4). Header type 0, single function.
  put(image, ConfigReg.VENDOR_ID, 2, spec.vendorId);
  put(image, ConfigReg.DEVICE_ID, 2, spec.deviceId);
  put(image, ConfigReg.REVISION_ID, 1, spec.revision);
  put(image, ConfigReg.CLASS_CODE, 3, spec.classCode);
  put(image, ConfigReg.SUBSYSTEM_VENDOR_ID, 2, spec.subsystemVendorId);
  put(image, ConfigReg.SUBSYSTEM_ID, 2, spec.subsystemId);
  put(image, ConfigReg.INTERRUPT_PIN, 1, spec.interruptPin);

  for (const r of HEADER_BEHAVIOUR) {
    put(wmask, r.offset, r.size, r.wmask);
    put(w1cmask, r.offset, r.size, r.w1c);
  }

  // BARs (§6.2.5.1): type bits read-only, address bits above the size writable. Unimplemented
  // slots and the ROM BAR (§6.2.5.2, no ROM) stay all-zero and read-only.
  for (const bar of spec.bars) {
    const { flags, wmask: m } = barBits(bar);
    const off = ConfigReg.BAR0 + 4 * bar.index;
    put(image, off, 4, flags);
    put(wmask, off, bar.kind === "mem64" ? 8 : 4, m);
  }

  const { capabilities, msixOffset } = placeCapabilities(spec, image, wmask);
  if (capabilities.length > 0) {
    put(image, ConfigReg.CAPABILITIES_POINTER, 1, capabilities[0].offset);
    put(image, ConfigReg.STATUS, 2, PciStatus.CAPABILITIES_LIST);
  }
  return { image, wmask, w1cmask, capabilities, msixOffset, regionSize: configRegionSize(spec) };
}

/**
 * Lays out the capability list (§6.7): from 0x40, each capability DWORD aligned, linked by the
 * next pointer at +1, the last one pointing to 0.
 */
function placeCapabilities(
  spec: PciConfigSpec,
  image: Uint8Array,
  wmask: Uint8Array,
): { capabilities: CapabilityPlacement[]; msixOffset?: number } {
  const bodies: { id: number; body: Uint8Array }[] = spec.capabilities.map((c) => {
    const body = c.body.slice();
    // Vendor-specific capabilities (§6.7 / virtio 1.x §4.1.4): byte 2 is the total length.
    if (c.id === CapId.VENDOR) body[0] = body.length + 2;
    return { id: c.id, body };
  });
  if (spec.msix) bodies.push({ id: CapId.MSIX, body: msixBody(spec) });

  const capabilities: CapabilityPlacement[] = [];
  let offset = CAPABILITIES_START;
  for (const { id, body } of bodies) {
    const length = body.length + 2;
    if (offset + length > CONFIG_SPACE_SIZE) {
      throw new RangeError(`PCI spec: capabilities do not fit in config space (id ${id})`);
    }
    capabilities.push({ id, offset, length });
    offset = (offset + length + 3) & ~3;
  }
  capabilities.forEach((cap, i) => {
    image[cap.offset] = cap.id;
    image[cap.offset + 1] = capabilities[i + 1]?.offset ?? 0;
    image.set(bodies[i].body, cap.offset + 2);
  });
  const msix = capabilities.find((c) => c.id === CapId.MSIX);
  // §6.8.2.3: Function Mask and MSI-X Enable are the only writable Message Control bits.
  if (msix) {
    put(wmask, msix.offset + Msix.CONTROL, 2, Msix.CONTROL_FUNCTION_MASK | Msix.CONTROL_ENABLE);
  }
  return { capabilities, msixOffset: msix?.offset };
}

/** Body (after the 2-byte header) of the MSI-X capability (§6.8.2.3-§6.8.2.5). */
function msixBody(spec: PciConfigSpec): Uint8Array {
  const m = spec.msix!;
  const body = new Uint8Array(Msix.CAP_SIZE - 2);
  put(body, Msix.CONTROL - 2, 2, m.vectors - 1);
  put(body, Msix.TABLE - 2, 4, m.tableOffset + m.bar);
  put(body, Msix.PBA - 2, 4, m.pbaOffset + m.bar);
  return body;
}
