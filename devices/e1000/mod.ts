/**
 * The Intel 82540EM (e1000) NIC device model and its command-line entry.
 *
 * @module
 */
export { E1000, type E1000Options, e1000PciSpec } from "./device.ts";
export { buildEepromImage, checksumWord, Eeprom, EEPROM_SUM, EEPROM_WORDS } from "./eeprom.ts";
export {
  createE1000FromOptions,
  E1000_OPTIONS,
  e1000DeviceType,
  parseE1000Options,
} from "./options.ts";
export { PHY, Phy, PHY_ID1, PHY_ID2 } from "./phy.ts";
export { MacRegisters, registerTable, STATS } from "./regs.ts";
