import assert from "node:assert/strict";
import { walkCapabilities } from "./pci.ts";
import { CapId, ConfigReg, PciStatus } from "../spec/pci.ts";

/** A config image with the capability list flag and the given [offset, id, next] entries. */
function image(first: number, caps: [number, number, number][]): Uint8Array {
  const cfg = new Uint8Array(256);
  cfg[ConfigReg.STATUS] = PciStatus.CAPABILITIES_LIST;
  cfg[ConfigReg.CAPABILITIES_POINTER] = first;
  for (const [at, id, next] of caps) cfg.set([id, next], at);
  return cfg;
}

Deno.test("walkCapabilities: follows the list; strict about bad pointers and loops", () => {
  const good = image(0x40, [[0x40, CapId.VENDOR, 0x58], [0x58, CapId.MSIX, 0]]);
  assert.deepEqual(walkCapabilities(good), [
    { id: CapId.VENDOR, offset: 0x40 },
    { id: CapId.MSIX, offset: 0x58 },
  ]);
  assert.deepEqual(walkCapabilities(new Uint8Array(256)), [], "no list without the STATUS bit");
  const loop = image(0x40, [[0x40, CapId.VENDOR, 0x40]]);
  assert.throws(() => walkCapabilities(loop), /loops/);
  const low = image(0x41, [[0x40, CapId.VENDOR, 0]]);
  assert.throws(() => walkCapabilities(low), /pointer 0x41 is invalid/);
  const inHeader = image(0x40, [[0x40, CapId.VENDOR, 0x10]]);
  assert.throws(() => walkCapabilities(inHeader), /pointer 0x10 is invalid/);
});

Deno.test("walkCapabilities lenient: masks the reserved pointer bits, stops where strict throws", () => {
  const low = image(0x41, [[0x40, CapId.VENDOR, 0x5b], [0x58, CapId.MSIX, 0]]);
  assert.deepEqual(walkCapabilities(low, true).map((c) => c.offset), [0x40, 0x58]);
  const loop = image(0x40, [[0x40, CapId.VENDOR, 0x40]]);
  assert.deepEqual(walkCapabilities(loop, true).map((c) => c.offset), [0x40]);
  const inHeader = image(0x40, [[0x40, CapId.VENDOR, 0x10]]);
  assert.deepEqual(walkCapabilities(inHeader, true).map((c) => c.offset), [0x40]);
});
