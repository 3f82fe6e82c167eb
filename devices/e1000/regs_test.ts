import assert from "node:assert/strict";
import { CTRL, EECD, ICR, MDIC, R, RAH_AV, STATUS } from "../../spec/e1000.ts";
import { PHY, PHY_ID1, PHY_ID2 } from "./phy.ts";
import { STATS } from "./regs.ts";
import { rd, rig, RIG_MAC, settle, wr } from "./testing.ts";

Deno.test("registers: reset values, masks and unknown offsets", () => {
  const { dev } = rig();
  assert.equal(rd(dev, R.VET), 0x8100);
  assert.equal(rd(dev, R.PBA), 0x00100030);
  wr(dev, R.RDLEN, 0x1234);
  assert.equal(rd(dev, R.RDLEN), 0x1200, "RDLEN keeps multiples of 128");
  wr(dev, R.TDBAL, 0x100f);
  assert.equal(rd(dev, R.TDBAL), 0x1000, "ring bases are 16-byte aligned");
  wr(dev, R.RDH, 0xffffffff);
  assert.equal(rd(dev, R.RDH), 0xffff);
  wr(dev, 0x7ff0, 0xdeadbeef);
  assert.equal(rd(dev, 0x7ff0), 0, "reserved space reads 0");
  wr(dev, R.STATUS, 0);
  assert.ok(rd(dev, R.STATUS) & STATUS.FD, "STATUS is read-only");
});

Deno.test("registers: byte and word accesses merge into dwords", () => {
  const { dev } = rig();
  wr(dev, R.FCAL, 0x11223344);
  dev.barWrite(0, R.FCAL + 1, Uint8Array.of(0xaa));
  assert.equal(rd(dev, R.FCAL), 0x1122aa44);
  const two = new Uint8Array(2);
  dev.barRead(0, R.FCAL + 2, two);
  assert.deepEqual([...two], [0x22, 0x11]);
  const wide = new Uint8Array(8);
  dev.barRead(0, R.RA, wide);
  assert.deepEqual([...wide.subarray(0, 6)], [...RIG_MAC]);
});

Deno.test("registers: RAL0/RAH0 hold the EEPROM address with AV after reset", () => {
  const { dev } = rig();
  assert.ok(rd(dev, R.RA + 4) & RAH_AV);
  wr(dev, R.RA, 0);
  wr(dev, R.CTRL, CTRL.RST);
  assert.equal(rd(dev, R.RA), 0x12005452);
});

Deno.test("statistics are read-to-clear; 64-bit pairs clear on the high read", async () => {
  const r = rig();
  r.dev.regs.count(STATS.GPRC, 3);
  r.dev.regs.count64(STATS.GORC, 2 ** 32 + 5);
  assert.equal(rd(r.dev, STATS.GPRC), 3);
  assert.equal(rd(r.dev, STATS.GPRC), 0);
  assert.equal(rd(r.dev, STATS.GORC), 5);
  assert.equal(rd(r.dev, STATS.GORC), 5, "low half does not clear");
  assert.equal(rd(r.dev, STATS.GORC + 4), 1);
  assert.equal(rd(r.dev, STATS.GORC), 0);
  r.dev.regs.count(STATS.MPC, 2 ** 33);
  assert.equal(rd(r.dev, STATS.MPC), 0xffffffff, "counters saturate");
  assert.equal(rd(r.dev, STATS.CRCERRS), 0);
  await settle(r.dev);
});

Deno.test("MDIC reads the M88 PHY at address 1", () => {
  const { dev } = rig();
  const mdicRead = (reg: number, phy = 1) => {
    wr(dev, R.MDIC, (reg << MDIC.REG_SHIFT) | (phy << MDIC.PHY_SHIFT) | MDIC.OP_READ);
    const v = rd(dev, R.MDIC);
    assert.ok(v & MDIC.READY);
    return v;
  };
  assert.equal(mdicRead(PHY.ID1) & 0xffff, PHY_ID1);
  assert.equal(mdicRead(PHY.ID2) & 0xffff, PHY_ID2);
  const id = (PHY_ID1 << 16) | (PHY_ID2 & 0xfff0);
  assert.equal(id >>> 0, 0x01410c20, "M88E1011_I_PHY_ID");
  const bmsr = mdicRead(PHY.STATUS) & 0xffff;
  assert.ok(bmsr & 0x0004, "link up");
  assert.ok(bmsr & 0x0020, "auto-negotiation complete");
  assert.equal(mdicRead(PHY.STATUS_1000T) & 0x3c00, 0x3c00);
  assert.ok(mdicRead(PHY.ID1, 2) & MDIC.ERROR, "no PHY at address 2");
});

Deno.test("MDIC writes: BMCR reset self-clears, power-down drops the link with LSC", () => {
  const { dev } = rig();
  wr(dev, R.CTRL, CTRL.SLU);
  assert.ok(dev.linkUp);
  rd(dev, R.ICR);
  const write = (reg: number, v: number) =>
    wr(dev, R.MDIC, (reg << MDIC.REG_SHIFT) | (1 << MDIC.PHY_SHIFT) | MDIC.OP_WRITE | v);
  write(PHY.AUTONEG_ADV, 0x0de1);
  write(PHY.CTRL, 0x8000 | 0x1000 | 0x0200);
  assert.equal(dev.phy.read(PHY.CTRL) & 0x8200, 0, "RESET and RESTART_AN self-clear");
  assert.equal(dev.phy.read(PHY.AUTONEG_ADV), 0x01e1, "PHY reset restored defaults");
  write(PHY.CTRL, 0x0800);
  assert.ok(!dev.linkUp);
  assert.equal(rd(dev, R.STATUS) & STATUS.LU, 0);
  assert.ok(rd(dev, R.ICR) & ICR.LSC);
  write(PHY.CTRL, 0x1140);
  assert.ok(dev.linkUp);
});

Deno.test("link: SLU brings the link up with LSC; backend carrier loss takes it down", () => {
  const r = rig();
  assert.ok(!r.dev.linkUp, "SLU is clear after reset");
  wr(r.dev, R.IMS, ICR.LSC);
  wr(r.dev, R.CTRL, CTRL.SLU);
  assert.ok(rd(r.dev, R.STATUS) & STATUS.LU);
  assert.deepEqual(r.ctx.triggers, [0]);
  assert.equal(rd(r.dev, R.ICR), ICR.LSC);
  r.backend.setLink(false);
  assert.ok(!r.dev.linkUp);
  assert.equal(rd(r.dev, R.ICR), ICR.LSC);
  r.backend.setLink(true);
  assert.ok(r.dev.linkUp);
});

Deno.test("CTRL.RST self-clears and resets the MAC; EECD reports the EEPROM present", () => {
  const { dev } = rig();
  wr(dev, R.IMS, 0xff);
  wr(dev, R.RCTL, 0x8002);
  wr(dev, R.CTRL, CTRL.SLU | CTRL.RST);
  assert.equal(rd(dev, R.CTRL) & CTRL.RST, 0);
  assert.equal(rd(dev, R.IMS), 0);
  assert.equal(rd(dev, R.RCTL), 0);
  assert.ok(!dev.linkUp, "SLU was reset too");
  assert.ok(rd(dev, R.EECD) & EECD.PRES);
});

Deno.test("I/O BAR: IOADDR selects a register, IODATA accesses it (reset through I/O)", () => {
  const { dev } = rig();
  const io = (off: number, v?: number) => {
    const b = new Uint8Array(4);
    if (v === undefined) {
      dev.barRead(1, off, b);
      return new DataView(b.buffer).getUint32(0, true);
    }
    new DataView(b.buffer).setUint32(0, v, true);
    dev.barWrite(1, off, b);
    return 0;
  };
  io(0, R.FCAL);
  io(4, 0xcafe);
  assert.equal(rd(dev, R.FCAL), 0xcafe);
  assert.equal(io(4), 0xcafe);
  assert.equal(io(0), R.FCAL);
  wr(dev, R.IMS, ICR.RXT0);
  io(0, R.CTRL);
  io(4, CTRL.RST);
  assert.equal(rd(dev, R.IMS), 0, "reset through the I/O window");
  assert.equal(io(0x10), 0);
});
