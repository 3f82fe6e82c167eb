import assert from "node:assert/strict";
import { EECD, EERD, PCI_ID, R } from "../../spec/e1000.ts";
import { EEPROM_SUM, EEPROM_WORD, EEPROM_WORDS } from "./eeprom.ts";
import type { E1000 } from "./device.ts";
import { rd, rig, RIG_MAC, wr } from "./testing.ts";

/**
 * Reads `count` words the way Linux's e1000 does for a Microwire part (e1000_hw.c:
 * e1000_acquire_eeprom, e1000_shift_out_ee_bits, e1000_shift_in_ee_bits, e1000_standby_eeprom).
 */
function bitBangRead(dev: E1000, offset: number, count: number): number[] {
  let eecd = rd(dev, R.EECD) | EECD.REQ;
  wr(dev, R.EECD, eecd);
  assert.ok(rd(dev, R.EECD) & EECD.GNT, "grant");
  eecd &= ~(EECD.DI | EECD.SK);
  wr(dev, R.EECD, eecd);
  eecd |= EECD.CS;
  wr(dev, R.EECD, eecd);
  const clock = (high: boolean) => {
    eecd = high ? eecd | EECD.SK : eecd & ~EECD.SK;
    wr(dev, R.EECD, eecd);
  };
  const shiftOut = (data: number, bits: number) => {
    for (let mask = 1 << (bits - 1); mask; mask >>= 1) {
      eecd = data & mask ? eecd | EECD.DI : eecd & ~EECD.DI;
      wr(dev, R.EECD, eecd);
      clock(true);
      clock(false);
    }
    eecd &= ~EECD.DI;
    wr(dev, R.EECD, eecd);
  };
  const shiftIn = () => {
    let data = 0;
    for (let i = 0; i < 16; i++) {
      data <<= 1;
      clock(true);
      if (rd(dev, R.EECD) & EECD.DO) data |= 1;
      clock(false);
    }
    return data;
  };
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    shiftOut(0b110, 3);
    shiftOut(offset + i, 6);
    out.push(shiftIn());
    // standby: deselect, clock high, select, clock low
    eecd &= ~(EECD.CS | EECD.SK);
    wr(dev, R.EECD, eecd);
    clock(true);
    eecd |= EECD.CS;
    wr(dev, R.EECD, eecd);
    clock(false);
  }
  eecd &= ~(EECD.CS | EECD.DI | EECD.SK | EECD.REQ);
  wr(dev, R.EECD, eecd);
  return out;
}

Deno.test("EEPROM: bit-banged Microwire reads return the image; checksum is 0xBABA", () => {
  const { dev } = rig();
  assert.equal(rd(dev, R.EECD) & EECD.SIZE, 0, "64-word part");
  const words = bitBangRead(dev, 0, EEPROM_WORDS);
  for (let i = 0; i < EEPROM_WORDS; i++) assert.equal(words[i], dev.eeprom.word(i), `word ${i}`);
  assert.equal(words.reduce((a, b) => a + b, 0) & 0xffff, EEPROM_SUM);
  const mac = [words[0] & 0xff, words[0] >> 8, words[1] & 0xff, words[1] >> 8, words[2] & 0xff];
  assert.deepEqual(mac, [...RIG_MAC.subarray(0, 5)]);
  assert.equal(words[EEPROM_WORD.DEVICE_ID], PCI_ID.DEVICE);
  assert.equal(words[EEPROM_WORD.VENDOR_ID], PCI_ID.VENDOR);
  assert.equal(words[EEPROM_WORD.INIT_CONTROL_1] >> 14, 0b01, "valid signature");
  assert.equal(words[EEPROM_WORD.INIT_CONTROL_2] & 0x3000, 0, "no pause advertised");
  assert.deepEqual(bitBangRead(dev, 0x0d, 2), [PCI_ID.DEVICE, PCI_ID.VENDOR]);
});

Deno.test("EEPROM: EERD reads a word and sets DONE; bad addresses read 0", () => {
  const { dev } = rig();
  wr(dev, R.EERD, EERD.START | (EEPROM_WORD.DEVICE_ID << EERD.ADDR_SHIFT));
  const v = rd(dev, R.EERD);
  assert.ok(v & EERD.DONE);
  assert.equal(v >>> EERD.DATA_SHIFT, PCI_ID.DEVICE);
  wr(dev, R.EERD, EERD.START | (200 << EERD.ADDR_SHIFT));
  assert.equal(rd(dev, R.EERD) >>> EERD.DATA_SHIFT, 0);
});

Deno.test("EEPROM: commands other than READ are ignored, DO reads high", () => {
  const { dev } = rig();
  wr(dev, R.EECD, EECD.CS);
  for (const bit of [1, 0, 1, 0, 0, 0, 0, 0, 0]) {
    const di = bit ? EECD.DI : 0;
    wr(dev, R.EECD, EECD.CS | di);
    wr(dev, R.EECD, EECD.CS | di | EECD.SK);
    wr(dev, R.EECD, EECD.CS | di);
  }
  assert.ok(rd(dev, R.EECD) & EECD.DO);
  wr(dev, R.EECD, 0);
  assert.deepEqual(bitBangRead(dev, 0, 1), [dev.eeprom.word(0)]);
});
