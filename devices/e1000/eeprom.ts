/**
 * The 82540EM's 64-word Microwire EEPROM (SDM §5.3, §5.6): its image (MAC address, PCI ids,
 * initialization words, checksum), bit-banged access through EECD (SDM §13.4.3) as the Linux
 * driver does it, and the EERD shortcut register (SDM §13.4.4).
 *
 * @module
 */
import { EECD, EERD, PCI_ID } from "../../spec/e1000.ts";
import type { RecordReader, RecordValue } from "../../protocol/record.ts";

/** EEPROM word count (EECD.SIZE clear: 64 words, 6 address bits). */
export const EEPROM_WORDS = 64;
/** Word holding the checksum that makes words 0x00-0x3f sum to {@link EEPROM_SUM}. */
export const CHECKSUM_WORD = 0x3f;
/** The sum the driver checks (SDM §5.6.14). */
export const EEPROM_SUM = 0xbaba;

/** Word addresses of the image (SDM table 5-2). */
export const EEPROM_WORD = {
  MAC: 0x00,
  ID_LED: 0x04,
  PBA_0: 0x08,
  PBA_1: 0x09,
  INIT_CONTROL_1: 0x0a,
  SUBSYSTEM_ID: 0x0b,
  SUBSYSTEM_VENDOR: 0x0c,
  DEVICE_ID: 0x0d,
  VENDOR_ID: 0x0e,
  INIT_CONTROL_2: 0x0f,
  INIT_CONTROL_3: 0x24,
} as const;

/**
 * Builds the image for `mac`: ICW1 carries the valid signature (bits 15:14 = 01b) and asks to
 * load the ids; ICW2 advertises no pause (flow control is not emulated) and no APM; the LED
 * word is unprogrammed (0xffff: driver defaults); word 0x3f makes the sum 0xbaba.
 */
export function buildEepromImage(mac: Uint8Array): Uint16Array {
  if (mac.length !== 6) throw new RangeError("MAC address must be 6 bytes");
  const w = new Uint16Array(EEPROM_WORDS);
  for (let i = 0; i < 3; i++) w[EEPROM_WORD.MAC + i] = mac[2 * i] | (mac[2 * i + 1] << 8);
  w[EEPROM_WORD.ID_LED] = 0xffff;
  w[EEPROM_WORD.PBA_0] = 0x1234;
  w[EEPROM_WORD.PBA_1] = 0x5678;
  w[EEPROM_WORD.INIT_CONTROL_1] = 0x4000 | 0x0003;
  w[EEPROM_WORD.SUBSYSTEM_ID] = PCI_ID.SUBSYSTEM;
  w[EEPROM_WORD.SUBSYSTEM_VENDOR] = PCI_ID.SUBSYSTEM_VENDOR;
  w[EEPROM_WORD.DEVICE_ID] = PCI_ID.DEVICE;
  w[EEPROM_WORD.VENDOR_ID] = PCI_ID.VENDOR;
  w[EEPROM_WORD.INIT_CONTROL_2] = 0x0000;
  w[EEPROM_WORD.INIT_CONTROL_3] = 0x0000;
  w[CHECKSUM_WORD] = checksumWord(w);
  return w;
}

/** The word that makes words 0..0x3e plus itself sum to 0xbaba (mod 2^16). */
export function checksumWord(words: Uint16Array): number {
  let sum = 0;
  for (let i = 0; i < CHECKSUM_WORD; i++) sum += words[i];
  return (EEPROM_SUM - sum) & 0xffff;
}

/** Microwire READ: start bit 1 and opcode 10b, sent as 3 bits (SDM §5.3.1). */
const READ_OPCODE = 0b110;
const OPCODE_BITS = 3;
const ADDR_BITS = 6;
const COMMAND_BITS = OPCODE_BITS + ADDR_BITS;
/** EECD bits the driver drives; they read back as written. */
const DRIVEN = EECD.SK | EECD.CS | EECD.DI | EECD.FWE_MASK | EECD.REQ;

/**
 * EEPROM behind EECD. The driver raises CS, clocks in a 9-bit command (opcode, address) on SK
 * rising edges, then reads 16 data bits on DO, MSB first; the output advances on each SK falling
 * edge, the first one moving from the dummy bit to the MSB. Reads continue into the following
 * words (sequential read). Write commands are ignored (the image is read-only).
 */
export class Eeprom {
  readonly #words: Uint16Array;
  #driven = 0;
  #command = 0;
  #bitsIn = 0;
  #reading = false;
  #addr = 0;
  /** Index of the data bit on DO (-1: dummy 0 before the MSB). */
  #bitOut = -1;
  #eerd = 0;

  constructor(words: Uint16Array) {
    if (words.length !== EEPROM_WORDS) throw new RangeError("EEPROM image must be 64 words");
    this.#words = words;
  }

  /** A copy of word `i`. */
  word(i: number): number {
    return this.#words[i & (EEPROM_WORDS - 1)];
  }

  /** Back to idle (device reset). */
  reset(): void {
    this.#driven = 0;
    this.#eerd = 0;
    this.#restart();
  }

  #restart(): void {
    this.#command = 0;
    this.#bitsIn = 0;
    this.#reading = false;
    this.#bitOut = -1;
  }

  /** EECD read: driven bits, PRES, GNT while requested, and DO. */
  readEecd(): number {
    let v = this.#driven | EECD.PRES;
    if (this.#driven & EECD.REQ) v |= EECD.GNT;
    if (this.#dataOut()) v |= EECD.DO;
    return v;
  }

  #dataOut(): boolean {
    if (!this.#reading) return true; // ready
    if (this.#bitOut < 0) return false; // dummy bit
    const word = this.#words[(this.#addr + (this.#bitOut >> 4)) & (EEPROM_WORDS - 1)];
    return ((word >> (15 - (this.#bitOut & 15))) & 1) === 1;
  }

  /** EECD write: CS rising edge restarts; SK edges shift command bits in and data bits out. */
  writeEecd(value: number): void {
    const old = this.#driven;
    this.#driven = value & DRIVEN;
    if (!(value & EECD.CS)) return;
    if (!(old & EECD.CS)) this.#restart();
    const skBefore = (old & EECD.SK) !== 0;
    const skNow = (value & EECD.SK) !== 0;
    if (skBefore === skNow) return;
    if (skNow) this.#risingEdge((value & EECD.DI) !== 0);
    else if (this.#reading) this.#bitOut++;
  }

  #risingEdge(di: boolean): void {
    if (this.#reading || this.#bitsIn >= COMMAND_BITS) return;
    this.#command = (this.#command << 1) | (di ? 1 : 0);
    if (++this.#bitsIn < COMMAND_BITS) return;
    const opcode = this.#command >> ADDR_BITS;
    if (opcode !== READ_OPCODE) return;
    this.#reading = true;
    this.#addr = this.#command & (EEPROM_WORDS - 1);
    this.#bitOut = -1;
  }

  /** The serial interface's state and the contents (for a check: the contents are fixed). */
  save(): RecordValue {
    return {
      words: new Uint8Array(this.#words.buffer.slice(0)),
      driven: this.#driven,
      command: this.#command,
      bitsIn: this.#bitsIn,
      reading: this.#reading,
      addr: this.#addr,
      bitOut: this.#bitOut,
      eerd: this.#eerd,
    };
  }

  /** Checks a saved state (same contents: same MAC); returns the function that loads it. */
  parse(r: RecordReader): () => void {
    const words = r.bytes("words", 2 * EEPROM_WORDS);
    const mine = new Uint8Array(this.#words.buffer);
    if (words.some((b, i) => b !== mine[i])) r.fail("words", "another EEPROM (station address)");
    const s = {
      driven: r.uint("driven", 32),
      command: r.uint("command", COMMAND_BITS),
      bitsIn: r.int("bitsIn", 0, COMMAND_BITS),
      reading: r.bool("reading"),
      addr: r.int("addr", 0, EEPROM_WORDS - 1),
      bitOut: r.int("bitOut", -1, 16 * EEPROM_WORDS),
      eerd: r.uint("eerd", 32),
    };
    r.done();
    if ((s.driven & ~DRIVEN) !== 0) r.fail("driven", "bits the driver cannot drive");
    return () => {
      this.#driven = s.driven;
      this.#command = s.command;
      this.#bitsIn = s.bitsIn;
      this.#reading = s.reading;
      this.#addr = s.addr;
      this.#bitOut = s.bitOut;
      this.#eerd = s.eerd;
    };
  }

  /** EERD read. */
  readEerd(): number {
    return this.#eerd;
  }

  /** EERD write: START reads the addressed word at once and sets DONE. */
  writeEerd(value: number): void {
    const addr = (value >>> EERD.ADDR_SHIFT) & 0xff;
    if (!(value & EERD.START)) {
      this.#eerd = value & ~EERD.DONE;
      return;
    }
    const data = addr < EEPROM_WORDS ? this.#words[addr] : 0;
    this.#eerd = ((data << EERD.DATA_SHIFT) | (addr << EERD.ADDR_SHIFT) | EERD.DONE) >>> 0;
  }
}
