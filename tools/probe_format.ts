/**
 * Human-readable text of a `vfud probe` report.
 *
 * @module
 */
import type { ProbeReport } from "./probe.ts";
import type { DecodedCapability, DecodedConfig } from "./pci_decode.ts";
import { formatDevice } from "./probe_device.ts";

const hex = (v: number | bigint, width = 0) => `0x${v.toString(16).padStart(width, "0")}`;

function size(v: bigint): string {
  if (v === 0n) return "0";
  for (const [unit, shift] of [["G", 30n], ["M", 20n], ["K", 10n]] as const) {
    if (v >= 1n << shift && v % (1n << shift) === 0n) return `${v >> shift}${unit}`;
  }
  return `${v}`;
}

function capsText(caps: unknown): string[] {
  if (caps === null || typeof caps !== "object") return ["  capabilities: none"];
  const c = (caps as { capabilities?: unknown }).capabilities ?? caps;
  return Object.entries(c as Record<string, unknown>).map(([k, v]) =>
    `  ${k}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}`
  );
}

/** Capability fields shown in hex (addresses and lengths); the rest are counts or indexes. */
const HEX_FIELDS = new Set(["offset", "length", "notifyOffMultiplier"]);

function capLine(c: DecodedCapability): string {
  const d = c.details
    ? " " +
      Object.entries(c.details).map(([k, v]) =>
        `${k}=${typeof v === "number" && HEX_FIELDS.has(k) ? hex(v) : v}`
      ).join(" ")
    : "";
  return `    [${hex(c.offset, 2)}] ${c.name} (${hex(c.id, 2)})${d}`;
}

function configText(cfg: DecodedConfig, cfgSize: bigint | undefined): string[] {
  const lines = [
    `config space (${cfgSize === undefined ? "?" : size(cfgSize)}):`,
    `  vendor ${hex(cfg.vendorId, 4)}${cfg.vendorName ? ` ${cfg.vendorName}` : ""}, ` +
    `device ${hex(cfg.deviceId, 4)}${cfg.deviceName ? ` ${cfg.deviceName}` : ""}, ` +
    `revision ${hex(cfg.revision, 2)}`,
    `  subsystem ${hex(cfg.subsystemVendorId, 4)}:${hex(cfg.subsystemId, 4)}`,
    `  class ${hex(cfg.classCode.base, 2)} ${hex(cfg.classCode.sub, 2)} ` +
    `${hex(cfg.classCode.progIf, 2)} (${cfg.classCode.name})`,
    `  command ${hex(cfg.command, 4)} status ${hex(cfg.status, 4)} header type ${
      hex(cfg.headerType, 2)
    } interrupt pin ${cfg.interruptPin ? "INT" + "ABCD"[cfg.interruptPin - 1] : "none"}`,
    "  BARs:",
  ];
  for (const b of cfg.bars) {
    if (b.kind === "unused") continue;
    lines.push(
      `    BAR${b.index}: ${b.kind}${b.prefetchable ? " prefetchable" : ""} size ${
        b.size === undefined ? "?" : size(b.size)
      } address ${hex(b.address)}`,
    );
  }
  lines.push("  capabilities:");
  if (!cfg.capabilities.length) lines.push("    none");
  lines.push(...cfg.capabilities.map(capLine));
  if (cfg.extendedCapabilities.length) {
    lines.push("  extended capabilities:", ...cfg.extendedCapabilities.map(capLine));
  }
  return lines;
}

/** The report as indented text. */
export function formatReport(r: ProbeReport): string {
  const lines = [
    `vfio-user server at ${r.socket}`,
    `protocol version ${r.version.major}.${r.version.minor}, server capabilities:`,
    ...capsText(r.version.capabilities),
    `device: flags ${r.device.flags.join("|") || "none"}, ${r.device.numRegions} regions, ` +
    `${r.device.numIrqs} IRQ indexes`,
    "regions:",
  ];
  for (const g of r.regions) {
    if (g.size === 0n && g.flags.length === 0) {
      lines.push(`  ${g.index} ${g.name}: not implemented`);
      continue;
    }
    lines.push(
      `  ${g.index} ${g.name}: size ${size(g.size)} (${hex(g.size)}) flags ${
        g.flags.join("|") || "none"
      }${g.flags.includes("MMAP") ? ` mmap offset ${hex(g.offset)}` : ""}`,
    );
    for (const a of g.sparseMmap ?? []) {
      lines.push(`      sparse mmap area ${hex(a.offset)} size ${hex(a.size)}`);
    }
    if (g.otherCaps) lines.push(`      other capabilities: ${g.otherCaps.join(", ")}`);
  }
  lines.push("IRQs:");
  for (const i of r.irqs) {
    lines.push(`  ${i.index} ${i.name}: count ${i.count} flags ${i.flags.join("|") || "none"}`);
  }
  if (r.config) lines.push(...configText(r.config, r.configSize));
  if (r.deviceInfo) lines.push(formatDevice(r.deviceInfo));
  return lines.join("\n");
}
