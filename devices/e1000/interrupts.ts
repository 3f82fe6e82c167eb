/**
 * Interrupt logic of the 82540EM (SDM §13.4.17-13.4.21): causes latch in ICR; the INTx line is
 * asserted while ICR & IMS is non-zero; reading ICR clears it (and so lowers the line). ITR
 * (SDM §13.4.18) sets a minimum interval between assertions in 256 ns units: an assertion that
 * comes too early is postponed with a timer, never busy-waited for.
 *
 * @module
 */
import { ICR_VALID } from "../../spec/e1000.ts";
import type { RecordReader, RecordValue } from "../../protocol/record.ts";
import { denoTimer, type SetTimer, type Timer } from "../../sys/event_loop.ts";

/** Where the interrupt goes (the device context's INTx line). */
export interface IrqLine {
  trigger(vector: number): void;
  lowerIntx(): void;
}

/** ITR unit in milliseconds (256 ns). */
const ITR_UNIT_MS = 256e-6;

/** ICR/IMS/ITR state and the INTx line it drives. */
export class Interrupts {
  readonly #line: () => IrqLine | undefined;
  readonly #now: () => number;
  #icr = 0;
  #ims = 0;
  #itr = 0;
  #asserted = false;
  #lastAssert = -Infinity;
  #timer: Timer | undefined;
  readonly #setTimer: SetTimer;
  #paused = false;

  /**
   * `line` is looked up at each change (the device gets its context after construction);
   * `setTimer` starts the moderation timer (the event loop's, where one serves the device).
   */
  constructor(
    line: () => IrqLine | undefined,
    now: () => number = () => performance.now(),
    setTimer: SetTimer = denoTimer,
  ) {
    this.#line = line;
    this.#now = now;
    this.#setTimer = setTimer;
  }

  /** Pending causes (ICR without clearing). */
  get icr(): number {
    return this.#icr;
  }

  /** Enabled causes. */
  get ims(): number {
    return this.#ims;
  }

  /** ITR interval (256 ns units, 0 = no throttling). */
  get itr(): number {
    return this.#itr;
  }

  /** True while the INTx line is asserted. */
  get asserted(): boolean {
    return this.#asserted;
  }

  /** Latches `causes` in ICR (device events and ICS writes). */
  raise(causes: number): void {
    this.#icr = (this.#icr | causes) & ICR_VALID;
    this.#update();
  }

  /** ICR read: returns the causes and clears them all (SDM §13.4.17). */
  readIcr(): number {
    const v = this.#icr;
    this.#icr = 0;
    this.#update();
    return v;
  }

  /** ICR write: ones clear the matching causes. */
  writeIcr(value: number): void {
    this.#icr &= ~value;
    this.#update();
  }

  /** IMS write: ones enable causes. */
  enable(value: number): void {
    this.#ims = (this.#ims | value) & ICR_VALID;
    this.#update();
  }

  /** IMC write: ones disable causes. */
  disable(value: number): void {
    this.#ims &= ~value;
    this.#update();
  }

  /** ITR write (low 16 bits: interval). */
  setItr(value: number): void {
    this.#itr = value & 0xffff;
  }

  /** Power-on state: nothing pending or enabled, line low, no timer. */
  reset(): void {
    this.#icr = 0;
    this.#ims = 0;
    this.#itr = 0;
    this.#lastAssert = -Infinity;
    this.#cancelTimer();
    if (this.#asserted) {
      this.#asserted = false;
      this.#line()?.lowerIntx();
    }
  }

  /** Device paused: the line keeps its level, causes are only latched. */
  pause(): void {
    this.#paused = true;
    this.#cancelTimer();
  }

  /** Device running again: the line follows ICR & IMS. */
  resume(): void {
    this.#paused = false;
    this.#update();
  }

  /** ICR, IMS, ITR and the line level. */
  save(): RecordValue {
    return { icr: this.#icr, ims: this.#ims, itr: this.#itr, asserted: this.#asserted };
  }

  /** Checks a saved state; returns the function that loads it (the line is the host's). */
  parse(r: RecordReader): () => void {
    const s = {
      icr: r.uint("icr", 32),
      ims: r.uint("ims", 32),
      itr: r.uint("itr", 16),
      asserted: r.bool("asserted"),
    };
    r.done();
    if (s.icr & ~ICR_VALID) r.fail("icr", "undefined cause bits");
    if (s.ims & ~ICR_VALID) r.fail("ims", "undefined cause bits");
    return () => {
      this.#icr = s.icr;
      this.#ims = s.ims;
      this.#itr = s.itr;
      this.#asserted = s.asserted;
      this.#lastAssert = -Infinity;
      this.#cancelTimer();
    };
  }

  /** Stops the moderation timer (device closed). */
  close(): void {
    this.#cancelTimer();
  }

  #update(): void {
    if (this.#paused) return;
    const pending = (this.#icr & this.#ims) !== 0;
    if (!pending) {
      this.#cancelTimer();
      if (this.#asserted) {
        this.#asserted = false;
        this.#line()?.lowerIntx();
      }
      return;
    }
    if (this.#asserted || this.#timer !== undefined) return;
    const wait = this.#lastAssert + this.#itr * ITR_UNIT_MS - this.#now();
    if (wait > 0) {
      this.#timer = this.#setTimer(() => {
        this.#timer = undefined;
        this.#update();
      }, Math.max(1, Math.ceil(wait)));
      return;
    }
    this.#asserted = true;
    this.#lastAssert = this.#now();
    this.#line()?.trigger(0);
  }

  #cancelTimer(): void {
    if (this.#timer === undefined) return;
    this.#timer.cancel();
    this.#timer = undefined;
  }
}
