/**
 * MAC address parsing, formatting and stable defaults.
 *
 * @module
 */

/** Parses "52:54:00:12:34:56" (or with dashes); throws on anything else or a group address. */
export function parseMac(text: string): Uint8Array {
  const parts = text.trim().split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new Error(`"${text}" is not a MAC address (want xx:xx:xx:xx:xx:xx)`);
  }
  const mac = Uint8Array.from(parts.map((p) => parseInt(p, 16)));
  if (mac[0] & 1) throw new Error(`${text} is a multicast address, not a station address`);
  if (mac.every((b) => b === 0)) throw new Error(`${text} is not a valid station address`);
  return mac;
}

/** Formats as lowercase xx:xx:xx:xx:xx:xx. */
export function formatMac(mac: Uint8Array): string {
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** FNV-1a, 32 bits. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * A stable, locally administered address 52:54:00:xx:xx:xx (QEMU's prefix) whose last three bytes
 * hash `seed` (e.g. the backend options), so the same command line gets the same address.
 */
export function defaultMac(seed: string): Uint8Array {
  const h = fnv1a(seed);
  return Uint8Array.of(0x52, 0x54, 0x00, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff);
}
