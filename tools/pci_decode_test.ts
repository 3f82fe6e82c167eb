import assert from "node:assert/strict";
import { className, decodeConfig, deviceNames } from "./pci_decode.ts";

function image(): Uint8Array {
  const c = new Uint8Array(256);
  const v = new DataView(c.buffer);
  v.setUint16(0x00, 0x1af4, true);
  v.setUint16(0x02, 0x1042, true);
  v.setUint16(0x06, 0x10, true); // capability list
  c[0x08] = 1;
  c[0x0b] = 0x01; // mass storage / SCSI
  v.setUint32(0x10, 0x0000000c, true); // BAR0: 64-bit prefetchable memory
  v.setUint32(0x14, 0x1, true); // its upper half: address 0x1_00000000
  v.setUint32(0x18, 0xc001, true); // BAR2: I/O at 0xc000
  c[0x34] = 0x40;
  c[0x3d] = 1;
  // virtio notify cap at 0x40 -> MSI-X at 0x58
  c.set([0x09, 0x58, 20, 2, 4, 0], 0x40);
  v.setUint32(0x48, 0x3000, true);
  v.setUint32(0x4c, 0x1000, true);
  v.setUint32(0x50, 4, true);
  c.set([0x11, 0x00], 0x58);
  v.setUint16(0x5a, 0x8001, true); // enabled, 2 vectors
  v.setUint32(0x5c, 0x1, true); // table BAR1 + 0
  v.setUint32(0x60, 0x801, true); // PBA BAR1 + 0x800
  return c;
}

Deno.test("pci_decode: identity, class, BARs", () => {
  const d = decodeConfig(image(), [0x4000n, 0n, 0x100n]);
  assert.equal(d.vendorId, 0x1af4);
  assert.equal(d.deviceName, "virtio block (modern)");
  assert.equal(d.classCode.name, "mass storage / SCSI");
  assert.equal(d.interruptPin, 1);
  assert.deepEqual(d.bars.map((b) => [b.index, b.kind, b.prefetchable, b.address]), [
    [0, "memory64", true, 0x1_0000_0000n],
    [2, "io", false, 0xc000n],
    [3, "unused", false, 0n],
    [4, "unused", false, 0n],
    [5, "unused", false, 0n],
  ]);
});

Deno.test("pci_decode: virtio and MSI-X capabilities", () => {
  const caps = decodeConfig(image()).capabilities;
  assert.deepEqual(caps.map((c) => [c.offset, c.name]), [[0x40, "Vendor Specific"], [
    0x58,
    "MSI-X",
  ]]);
  assert.deepEqual(caps[0].details, {
    virtio: "notify",
    bar: 4,
    offset: 0x3000,
    length: 0x1000,
    notifyOffMultiplier: 4,
  });
  assert.deepEqual(caps[1].details, {
    tableSize: 2,
    enabled: true,
    functionMask: false,
    table: "BAR1 + 0x0",
    pba: "BAR1 + 0x800",
  });
});

Deno.test("pci_decode: a looping capability list ends", () => {
  const c = image();
  c[0x59] = 0x40; // MSI-X points back to the first capability
  assert.equal(decodeConfig(c).capabilities.length, 2);
});

Deno.test("pci_decode: names", () => {
  assert.equal(deviceNames(0x8086, 0x100e).device, "82540EM Gigabit Ethernet (e1000)");
  assert.equal(deviceNames(0x1af4, 0x1000).device, "virtio network (transitional)");
  assert.equal(className(0x02, 0x00), "network / Ethernet");
  assert.equal(className(0x42, 0), "class 0x42");
});
