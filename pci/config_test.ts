import assert from "node:assert/strict";
import { type ConfigChange, PciConfigSpace } from "./config.ts";
import { Errno, ErrnoError, isErrno } from "../sys/errno.ts";
import { PciStatus } from "../spec/pci.ts";
import type { PciConfigSpec } from "./spec.ts";
import { sampleSpec } from "./testing.ts";

// Expected power-on bytes of sampleSpec(), written out by hand from PCI 3.0 §6.1 / §6.8.2.
// deno-fmt-ignore
const GOLDEN = Uint8Array.of(
  0xf4, 0x1a, 0x42, 0x10, 0x00, 0x00, 0x10, 0x00, // vendor, device, command 0, status CAP_LIST
  0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // rev 1, class 01/00/00, header type 0
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // BAR0, BAR1
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // BAR2, BAR3
  0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // BAR4 mem64|prefetchable, BAR5 (upper half)
  0x00, 0x00, 0x00, 0x00, 0xf4, 0x1a, 0x02, 0x00, // CardBus CIS, subsystem vendor/id
  0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, // ROM 0, capabilities pointer 0x40
  0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, // interrupt line 0, pin INTA
  0x09, 0x50, 0x10, 0x01, 0x04, 0x00, 0x00, 0x00, // vendor cap, next 0x50, cap_len 16, common
  0x00, 0x10, 0x00, 0x00, 0x38, 0x00, 0x00, 0x00, //   offset 0x1000, length 0x38
  0x09, 0x64, 0x14, 0x02, 0x04, 0x00, 0x00, 0x00, // vendor cap, next 0x64, cap_len 20, notify
  0x00, 0x30, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, //   offset 0x3000, length 0x1000
  0x04, 0x00, 0x00, 0x00, 0x11, 0x00, 0x01, 0x00, //   multiplier 4; MSI-X, next 0, size N-1=1
  0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00, //   table 0 BIR 4, PBA 0x800 BIR 4
);

const MSIX_CTRL = 0x66;

function rd(cfg: PciConfigSpace, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  cfg.read(offset, b);
  return b;
}

function rd32(cfg: PciConfigSpace, offset: number): number {
  return new DataView(rd(cfg, offset, 4).buffer).getUint32(0, true);
}

function rd16(cfg: PciConfigSpace, offset: number): number {
  return new DataView(rd(cfg, offset, 2).buffer).getUint16(0, true);
}

function wr32(cfg: PciConfigSpace, offset: number, value: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  cfg.write(offset, b);
}

function wr16(cfg: PciConfigSpace, offset: number, value: number): void {
  cfg.write(offset, Uint8Array.of(value & 0xff, value >> 8));
}

const isEinval = (e: unknown) => isErrno(e, Errno.EINVAL);

Deno.test("golden config space after construction", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  assert.equal(cfg.regionSize, 256);
  const all = rd(cfg, 0, 256);
  assert.deepEqual(all.subarray(0, GOLDEN.length), GOLDEN);
  assert.ok(all.subarray(GOLDEN.length).every((b) => b === 0));
});

Deno.test("capability chain from 0x34 reaches every capability and ends at 0", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  const found: { id: number; offset: number }[] = [];
  let ptr = rd(cfg, 0x34, 1)[0];
  for (let hops = 0; ptr !== 0; hops++) {
    assert.ok(hops < 48, "loop in capability list");
    assert.equal(ptr % 4, 0);
    assert.ok(ptr >= 0x40);
    const [id, next] = rd(cfg, ptr, 2);
    found.push({ id, offset: ptr });
    ptr = next;
  }
  assert.deepEqual(found, [{ id: 0x09, offset: 0x40 }, { id: 0x09, offset: 0x50 }, {
    id: 0x11,
    offset: 0x64,
  }]);
  assert.deepEqual(cfg.capabilityOffsets(), found);
  assert.ok(rd16(cfg, 0x06) & PciStatus.CAPABILITIES_LIST);
});

Deno.test("odd-length capabilities are DWORD aligned; no caps clears CAP_LIST", () => {
  const spec: PciConfigSpec = {
    ...sampleSpec(),
    msix: undefined,
    bars: [],
    capabilities: [{ id: 0x09, body: Uint8Array.of(0, 7, 7) }, {
      id: 0x10,
      body: new Uint8Array(3),
    }],
  };
  const cfg = new PciConfigSpace(spec);
  assert.deepEqual(cfg.capabilityOffsets(), [{ id: 0x09, offset: 0x40 }, {
    id: 0x10,
    offset: 0x48,
  }]);
  assert.deepEqual(rd(cfg, 0x40, 5), Uint8Array.of(0x09, 0x48, 5, 7, 7));
  assert.equal(rd(cfg, 0x49, 1)[0], 0);
  const bare = new PciConfigSpace({ ...spec, capabilities: [] });
  assert.equal(rd16(bare, 0x06), 0);
  assert.equal(rd(bare, 0x34, 1)[0], 0);
  assert.deepEqual(bare.capabilityOffsets(), []);
});

Deno.test("64-bit BAR pair sizing and programming", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  wr32(cfg, 0x20, 0xffffffff);
  wr32(cfg, 0x24, 0xffffffff);
  assert.equal(rd32(cfg, 0x20), 0xffffc00c); // ~(0x4000 - 1), mem64 | prefetchable
  assert.equal(rd32(cfg, 0x24), 0xffffffff); // upper half fully writable
  wr32(cfg, 0x20, 0xfe001234);
  wr32(cfg, 0x24, 0x00000001);
  assert.equal(rd32(cfg, 0x20), 0xfe00000c);
  assert.equal(cfg.barAddress(4), 0x1_fe00_0000n);
  assert.equal(cfg.barAddress(5), 0n);
  // Unaligned partial write of the low dword.
  cfg.write(0x21, Uint8Array.of(0xff, 0xff, 0xff));
  assert.equal(rd32(cfg, 0x20), 0xffffc00c);
});

Deno.test("32-bit memory, I/O and unimplemented BAR sizing", () => {
  const cfg = new PciConfigSpace({
    ...sampleSpec(),
    msix: undefined,
    bars: [{ index: 0, size: 0x1000, kind: "mem32" }, { index: 1, size: 0x20, kind: "io" }],
  });
  assert.equal(rd32(cfg, 0x10), 0x0);
  assert.equal(rd32(cfg, 0x14), 0x1);
  for (let i = 0; i < 6; i++) wr32(cfg, 0x10 + 4 * i, 0xffffffff);
  assert.equal(rd32(cfg, 0x10), 0xfffff000);
  assert.equal(rd32(cfg, 0x14), 0xffffffe1);
  for (let i = 2; i < 6; i++) assert.equal(rd32(cfg, 0x10 + 4 * i), 0, `BAR${i}`);
  wr32(cfg, 0x10, 0xc0000000);
  wr32(cfg, 0x14, 0xc040);
  assert.equal(cfg.barAddress(0), 0xc0000000n);
  assert.equal(cfg.barAddress(1), 0xc040n);
  assert.equal(cfg.barAddress(2), 0n);
  assert.throws(() => cfg.barAddress(6), RangeError);
});

Deno.test("ROM BAR sizing reads back 0 without a ROM", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  wr32(cfg, 0x30, 0xfffff800);
  assert.equal(rd32(cfg, 0x30), 0);
  wr32(cfg, 0x30, 0xffffffff);
  assert.equal(rd32(cfg, 0x30), 0);
});

Deno.test("writing all ones changes only writable bits", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  cfg.write(0, new Uint8Array(256).fill(0xff));
  const after = rd(cfg, 0, 256);
  const expected = new Uint8Array(256);
  expected.set(GOLDEN);
  expected.set([0x47, 0x05], 0x04); // COMMAND: IO|MEM|MASTER|PARITY|SERR|INTX_DISABLE
  expected.set([0x0c, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0x20); // BAR4/5 sizing
  expected[0x3c] = 0xff; // interrupt line
  expected.set([0x01, 0xc0], MSIX_CTRL); // Enable | Function Mask, table size unchanged
  assert.deepEqual(after, expected);
});

Deno.test("COMMAND bits and getters", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  assert.equal(cfg.busMaster, false);
  wr16(cfg, 0x04, 0x0006);
  assert.equal(cfg.command, 0x0006);
  assert.ok(cfg.busMaster && cfg.memoryEnabled && !cfg.ioEnabled && !cfg.intxDisabled);
  cfg.write(0x05, Uint8Array.of(0x04)); // byte write of the high half: INTx disable
  assert.equal(cfg.command, 0x0406);
  assert.ok(cfg.intxDisabled);
});

Deno.test("STATUS: error bits are write-1-to-clear, INTx status and CAP_LIST read-only", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  cfg.raiseStatusErrors(PciStatus.RECEIVED_MASTER_ABORT | PciStatus.DETECTED_PARITY_ERROR | 0x7);
  cfg.setIntxStatus(true);
  assert.equal(cfg.status, 0xa018);
  assert.ok(cfg.intxStatus);
  wr16(cfg, 0x06, 0x0000); // writing 0 clears nothing
  assert.equal(cfg.status, 0xa018);
  wr16(cfg, 0x06, 0x2000 | 0x0018); // clear master abort; bits 3/4 are not w1c
  assert.equal(cfg.status, 0x8018);
  // Dword write to COMMAND+STATUS: sets COMMAND, clears the remaining error bit.
  wr32(cfg, 0x04, 0xffff0002);
  assert.equal(cfg.status, 0x0018);
  assert.equal(cfg.command, 0x0002);
  cfg.setIntxStatus(false);
  assert.equal(cfg.status, 0x0010);
});

Deno.test("unaligned and multi-register accesses", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  assert.deepEqual(rd(cfg, 0x01, 4), Uint8Array.of(0x1a, 0x42, 0x10, 0x00));
  assert.deepEqual(rd(cfg, 0x0a, 3), Uint8Array.of(0x00, 0x01, 0x00));
  cfg.write(0x3b, Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd, 0xee)); // 0x3b..0x3f: only line writes
  assert.deepEqual(rd(cfg, 0x3b, 5), Uint8Array.of(0x00, 0xbb, 0x01, 0x00, 0x00));
  cfg.write(0x00, Uint8Array.of(0x12, 0x34, 0x56, 0x78)); // vendor/device read-only
  assert.equal(rd32(cfg, 0x00), 0x10421af4);
  assert.deepEqual(rd(cfg, 0xfe, 2), Uint8Array.of(0, 0));
});

Deno.test("out-of-range accesses throw ErrnoError(EINVAL)", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  const bad: [number, number][] = [
    [255, 2],
    [256, 1],
    [-1, 1],
    [0, 257],
    [0.5, 1],
    [
      2 ** 60,
      4,
    ],
    [NaN, 1],
    [0, 0],
  ];
  for (const [off, len] of bad) {
    assert.throws(() => cfg.read(off, new Uint8Array(len)), isEinval, `read ${off}+${len}`);
    assert.throws(() => cfg.write(off, new Uint8Array(len)), isEinval, `write ${off}+${len}`);
  }
  assert.deepEqual(rd(cfg, 0, 256).subarray(0, GOLDEN.length), GOLDEN);
});

Deno.test("4096-byte region: bytes past 256 read zero and ignore writes", () => {
  const cfg = new PciConfigSpace({ ...sampleSpec(), configSpaceSize: 4096 });
  assert.equal(cfg.regionSize, 4096);
  cfg.write(0xfc, new Uint8Array(8).fill(0xff)); // straddles 256
  assert.deepEqual(rd(cfg, 0xfc, 8), new Uint8Array(8));
  assert.deepEqual(rd(cfg, 0x100, 4), new Uint8Array(4)); // no extended capabilities
  assert.deepEqual(rd(cfg, 4095, 1), new Uint8Array(1));
  assert.throws(() => rd(cfg, 4095, 2), isEinval);
});

Deno.test("change notifications for COMMAND and MSI-X control", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  const seen: ConfigChange[] = [];
  const off = cfg.onChange((w) => seen.push(w));
  wr16(cfg, 0x04, 0x0004);
  wr16(cfg, 0x04, 0x0004); // unchanged: no event
  wr16(cfg, 0x3c, 0x0b); // not watched
  assert.deepEqual(seen, ["command"]);
  wr16(cfg, MSIX_CTRL, 0x8000);
  assert.ok(cfg.msixEnabled && !cfg.msixFunctionMasked);
  wr16(cfg, MSIX_CTRL, 0xc7ff); // table size bits are read-only
  assert.equal(rd16(cfg, MSIX_CTRL), 0xc001);
  assert.ok(cfg.msixFunctionMasked && cfg.msix!.functionMasked);
  assert.deepEqual(seen, ["command", "msix", "msix"]);
  // One dword write touching both watched registers of different kinds is two events.
  wr32(cfg, 0x04, 0x00000000);
  wr32(cfg, 0x64, 0x00000011); // clears Enable and Function Mask
  assert.deepEqual(seen.slice(3), ["command", "msix"]);
  assert.ok(!cfg.msixEnabled && !cfg.msix!.functionMasked);
  off();
  wr16(cfg, 0x04, 0x0002);
  assert.equal(seen.length, 5);
});

Deno.test("clearing Function Mask lets MsixState report unmasked vectors", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  const msix = cfg.msix!;
  const fired: number[] = [];
  msix.onUnmask((v) => {
    assert.ok(!cfg.msixFunctionMasked, "config already updated");
    if (msix.isPending(v)) {
      msix.clearPending(v);
      fired.push(v);
    }
  });
  wr16(cfg, MSIX_CTRL, 0xc000);
  assert.ok(msix.isMasked(0) && msix.isMasked(1));
  msix.setPending(1);
  wr16(cfg, MSIX_CTRL, 0x8000);
  assert.deepEqual(fired, [1]);
  assert.ok(!msix.isPending(1));
});

Deno.test("reset restores power-on state and notifies", () => {
  const cfg = new PciConfigSpace(sampleSpec());
  wr32(cfg, 0x20, 0xfe000000);
  wr32(cfg, 0x24, 0x1);
  wr16(cfg, 0x04, 0x0406);
  wr16(cfg, MSIX_CTRL, 0xc000);
  cfg.write(0x3c, Uint8Array.of(11));
  cfg.setIntxStatus(true);
  cfg.msix!.tableWrite(0, new Uint8Array(16).fill(0xff));
  cfg.msix!.setPending(0);
  const seen: ConfigChange[] = [];
  cfg.onChange((w) => seen.push(w));
  cfg.reset();
  assert.deepEqual(rd(cfg, 0, GOLDEN.length), GOLDEN);
  assert.deepEqual(seen, ["command", "msix"]);
  assert.equal(cfg.barAddress(4), 0n);
  assert.ok(!cfg.busMaster && !cfg.msixEnabled && !cfg.msixFunctionMasked && !cfg.intxStatus);
  assert.ok(!cfg.msix!.isPending(0) && !cfg.msix!.tableInUse);
  cfg.reset();
  assert.equal(seen.length, 2); // nothing changed the second time
});

Deno.test("invalid specs are rejected at construction", () => {
  const base = sampleSpec();
  const bad: Partial<PciConfigSpec>[] = [
    { vendorId: 0x10000 },
    { interruptPin: 5 },
    { bars: [{ index: 5, size: 0x1000, kind: "mem64" }], msix: undefined },
    {
      bars: [{ index: 0, size: 0x1000, kind: "mem64" }, { index: 1, size: 16, kind: "mem32" }],
      msix: undefined,
    },
    { bars: [{ index: 0, size: 0x1800, kind: "mem32" }], msix: undefined },
    { bars: [{ index: 0, size: 512, kind: "io" }], msix: undefined },
    { msix: { vectors: 2, bar: 4, tableOffset: 0, pbaOffset: 0x10 } }, // overlap
    { msix: { vectors: 2, bar: 4, tableOffset: 4, pbaOffset: 0x800 } }, // misaligned
    { msix: { vectors: 2, bar: 3, tableOffset: 0, pbaOffset: 0x800 } }, // no such BAR
    { msix: { vectors: 2, bar: 4, tableOffset: 0, pbaOffset: 0x4000 } }, // outside BAR
    { msix: { vectors: 0, bar: 4, tableOffset: 0, pbaOffset: 0x800 } },
    { capabilities: [{ id: 0x11, body: new Uint8Array(10) }] },
    { capabilities: [{ id: 0x09, body: new Uint8Array(0) }] },
    { capabilities: Array.from({ length: 12 }, () => ({ id: 0x09, body: new Uint8Array(14) })) },
    { configSpaceSize: 512 as 256 },
  ];
  for (const patch of bad) {
    assert.throws(
      () => new PciConfigSpace({ ...base, ...patch }),
      (e: unknown) => e instanceof RangeError || e instanceof TypeError,
      JSON.stringify(patch),
    );
  }
});

Deno.test("the spec's capability bodies are not modified", () => {
  const spec = sampleSpec();
  new PciConfigSpace(spec);
  assert.equal(spec.capabilities[0].body[0], 0);
});

Deno.test("config: save and restore round-trip BARs, COMMAND, MSI-X control and status bits", () => {
  const a = new PciConfigSpace(sampleSpec());
  a.write(0x20, Uint8Array.of(0x00, 0x00, 0xfe, 0xfe)); // BAR4 low
  a.write(0x24, Uint8Array.of(0x01, 0x00, 0x00, 0x00)); // BAR4 high
  a.write(0x04, Uint8Array.of(0x06, 0x04)); // memory, bus master, INTx disable
  a.write(MSIX_CTRL, Uint8Array.of(0x00, 0xc0)); // enable + function mask
  a.setIntxStatus(true);
  a.raiseStatusErrors(PciStatus.RECEIVED_MASTER_ABORT);
  const saved = a.save();
  const b = new PciConfigSpace(sampleSpec());
  const changes: ConfigChange[] = [];
  b.onChange((w) => changes.push(w));
  b.restore(saved);
  assert.deepEqual(rd(b, 0, 256), rd(a, 0, 256));
  assert.equal(b.barAddress(4), 0x1_fefe_0000n);
  assert.ok(b.busMaster && b.intxDisabled && b.msixEnabled && b.msixFunctionMasked);
  assert.ok(b.msix!.functionMasked, "the MSI-X state follows the restored Function Mask");
  assert.deepEqual(changes.sort(), ["command", "msix"]);
  assert.deepEqual(b.save(), saved, "save after restore gives the same record");
});

Deno.test("config: restore refuses state of another function, changing nothing", () => {
  const b = new PciConfigSpace(sampleSpec());
  const before = rd(b, 0, 256);
  const other = new PciConfigSpace({ ...sampleSpec(), deviceId: 0x1041 }).save();
  assert.throws(
    () => b.restore(other),
    (e) => e instanceof ErrnoError && /byte 0x2/.test(e.message),
  );
  const space = b.save().space;
  space[0x3d] = 2; // interrupt pin is read-only
  assert.throws(() => b.restore({ space }), /byte 0x3d/);
  assert.throws(() => b.restore({ space: new Uint8Array(255) }), /255 bytes, not 256/);
  assert.throws(() => b.restore({ space: b.save().space, extra: 1 }), /unknown field/);
  assert.throws(() => b.restore("junk"), /not a record/);
  assert.deepEqual(rd(b, 0, 256), before);
});
