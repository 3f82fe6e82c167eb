/**
 * Region bookkeeping for the session: which vfio-user regions exist (DEVICE_GET_REGION_INFO)
 * and where a BAR-relative access goes (MSI-X table, MSI-X PBA, or the device model).
 *
 * Region indexes follow the vfio PCI layout (vfio-user spec, "Region indexes"): 0-5 BARs,
 * 6 expansion ROM, 7 config space, 8 VGA.
 *
 * @module
 */
import type { PciConfigSpec } from "./spec.ts";
import { configRegionSize, findBar, validateSpec } from "./layout.ts";
import { checkRange } from "./range.ts";
import { BAR_COUNT, Msix, pbaSize } from "../spec/pci.ts";
import { Errno, ErrnoError } from "../sys/errno.ts";
import { REGION_INDEX_COUNT, RegionIndex, RegionInfoFlags } from "../protocol/region_info.ts";

/** Size and flags of one region. A size of 0 means "not implemented". */
export interface RegionInfo {
  index: number;
  size: number;
  flags: number;
}

/**
 * Size and READ|WRITE flags of regions 0-8 for `spec`: a declared BAR has its size, the upper
 * slot of a 64-bit BAR and undeclared slots 0; ROM 0 (no expansion ROM); config space 256 (or
 * the spec's `configSpaceSize`); VGA 0. MMAP is the session's decision and never set here.
 */
export function regionInfos(spec: PciConfigSpec): RegionInfo[] {
  const rw = RegionInfoFlags.READ | RegionInfoFlags.WRITE;
  const out: RegionInfo[] = [];
  for (let i = 0; i < REGION_INDEX_COUNT; i++) {
    const bar = i < BAR_COUNT ? findBar(spec, i) : undefined;
    let size = bar?.size ?? 0;
    if (i === RegionIndex.CONFIG) size = configRegionSize(spec);
    out.push({ index: i, size, flags: size > 0 ? rw : 0 });
  }
  return out;
}

/** What part of a BAR an access falls into; `offset` is relative to that part's start. */
export interface BarTarget {
  kind: "device" | "msix-table" | "msix-pba";
  offset: number;
}

interface Window {
  kind: BarTarget["kind"];
  start: number;
  end: number;
}

/** Routes BAR-relative accesses of one function, precomputed from its spec. */
export class BarMap {
  #sizes: number[];
  #windows: Window[][];

  /** Builds the map; throws RangeError/TypeError for an invalid spec. */
  constructor(spec: PciConfigSpec) {
    validateSpec(spec);
    this.#sizes = Array.from({ length: BAR_COUNT }, (_, i) => findBar(spec, i)?.size ?? 0);
    this.#windows = Array.from({ length: BAR_COUNT }, () => []);
    const m = spec.msix;
    if (m) {
      const table = m.tableOffset;
      const pba = m.pbaOffset;
      this.#windows[m.bar].push(
        { kind: "msix-table", start: table, end: table + m.vectors * Msix.ENTRY_SIZE },
        { kind: "msix-pba", start: pba, end: pba + pbaSize(m.vectors) },
      );
    }
  }

  /** Size of BAR `bar`, 0 when not implemented (including the upper slot of a 64-bit BAR). */
  barSize(bar: number): number {
    return Number.isInteger(bar) && bar >= 0 && bar < BAR_COUNT ? this.#sizes[bar] : 0;
  }

  /**
   * Classifies an access of `length` bytes at `offset` of BAR `bar`. Throws
   * `ErrnoError(EINVAL)` for an unimplemented BAR, an empty access, one crossing the BAR
   * end, or one straddling the edge of the MSI-X table or PBA: it would reach two owners, and
   * PCI 3.0 §6.8.2 only defines aligned DWORD/QWORD accesses within those structures.
   */
  route(bar: number, offset: number, length: number): BarTarget {
    const size = this.barSize(bar);
    if (size === 0) throw new ErrnoError(Errno.EINVAL, `BAR ${bar} not implemented`);
    checkRange(offset, length, size, `BAR ${bar}`);
    const end = offset + length;
    for (const w of this.#windows[bar]) {
      if (offset >= w.start && end <= w.end) return { kind: w.kind, offset: offset - w.start };
      if (offset < w.end && w.start < end) {
        throw new ErrnoError(
          Errno.EINVAL,
          `BAR ${bar}: access [${offset}, ${end}) straddles the ${w.kind} boundary`,
        );
      }
    }
    return { kind: "device", offset };
  }
}
