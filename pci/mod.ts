/**
 * PCI config-space framework: a device declares a {@link PciConfigSpec}; the framework provides
 * config space ({@link PciConfigSpace}), MSI-X table/PBA state ({@link MsixState}) and BAR
 * access routing ({@link BarMap}, {@link regionInfos}). Pure state, no I/O.
 *
 * @module
 */
export type { BarSpec, CapabilitySpec, MsixSpec, PciConfigSpec } from "./spec.ts";
export {
  type CapabilityOffset,
  type ConfigChange,
  type ConfigChangeListener,
  PciConfigSpace,
} from "./config.ts";
export { MsixState, type UnmaskListener } from "./msix.ts";
export { BarMap, type BarTarget, type RegionInfo, regionInfos } from "./bar_map.ts";
export {
  buildLayout,
  type CapabilityPlacement,
  type ConfigLayout,
  configRegionSize,
  validateSpec,
} from "./layout.ts";
