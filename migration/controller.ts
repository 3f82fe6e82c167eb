/**
 * The migration state of one device and its data transfer (spec, "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE",
 * "VFIO_USER_MIG_DATA_READ", "VFIO_USER_MIG_DATA_WRITE"). A request for a state walks the path
 * of states.ts one direct arc at a time; each arc's action is one entry of {@link ACTIONS}. The
 * device behind it is a {@link MigrationTarget}: the server's device host, which pauses, resumes,
 * saves and restores the device together with its PCI config space and interrupts.
 *
 * Source: RUNNING → PRE_COPY streams what can be sent while the device runs (an early frame,
 * again whenever it changed); → STOP_COPY pauses the device and appends the FINAL frame with
 * every section that differs from what was sent. A MIG_DATA_READ shorter than asked means "no
 * more data" (in PRE_COPY: for now). Destination: STOP → RESUMING collects MIG_DATA_WRITE bytes;
 * RESUMING → STOP decodes and loads them; a refused stream leaves the state RESUMING and the
 * device in its reset state.
 *
 * Errors: a refused request leaves the state unchanged. An arc whose action fails with an
 * errno (invalid stream, unmapped rings) stays where it was; any other failure puts the device
 * in ERROR, which only DEVICE_RESET leaves.
 *
 * @module
 */
import { Errno, ErrnoError } from "../sys/errno.ts";
import type { RecordValue } from "../protocol/record.ts";
import { encodeRecord } from "../protocol/record.ts";
import { type ArcAction, arcAction, DeviceState, pathTo, stateName } from "./states.ts";
import { decodeStream, encodeFrame, type Section } from "./stream.ts";
import { toHex } from "../protocol/hex.ts";
import { concatBytes } from "../protocol/wire.ts";

/** What the controller migrates: a device with everything the framework keeps for it. */
export interface MigrationTarget {
  /** Device type name (in every frame header). */
  readonly deviceType: string;
  /** Version of the device section's record. */
  readonly stateVersion: number;
  /** Stops the device (see Device.pause); pauses nest. */
  pause(): Promise<void>;
  /** Ends one pause. */
  resume(): void;
  /** Sections that can be saved while the device runs (sent early in PRE_COPY). */
  saveEarly(): Section[];
  /** Every section (the device is paused). */
  save(): Section[];
  /**
   * Loads decoded sections (the device is paused). Throws an `ErrnoError` when they are not a
   * valid state of this device, after putting the device in its reset state.
   */
  restore(sections: ReadonlyMap<number, RecordValue>, stateVersion: number): Promise<void>;
}

/** Limits of a controller. */
export interface MigrationOptions {
  /** Most bytes a destination collects before the commit (E2BIG beyond). */
  maxIncoming: number;
}

/** Default {@link MigrationOptions.maxIncoming}: far above any device state (KiBs to MiBs). */
export const DEFAULT_MAX_INCOMING = 128 << 20;

/** The flags of the MIGRATION feature (spec, "VFIO_DEVICE_FEATURE_MIGRATION"). */
export const MIGRATION_FLAGS = 1 | 4; // STOP_COPY | PRE_COPY

type Action = (c: MigrationController) => Promise<void> | void;

/** What each direct arc does (the table behind states.ts ARCS). */
const ACTIONS: Readonly<Record<ArcAction, Action>> = {
  "pause": (c) => c.pauseTarget(),
  "resume": (c) => c.resumeTarget(),
  "save": (c) => c.finalFrame(),
  "end-save": (c) => c.endSave(),
  "begin-load": (c) => c.beginLoad(),
  "load": (c) => c.load(),
  "pre-copy": (c) => c.beginPreCopy(),
  "pause-save": async (c) => {
    await c.pauseTarget();
    c.finalFrame();
  },
};

/** The migration state machine of one device. */
export class MigrationController {
  readonly target: MigrationTarget;
  readonly #opts: MigrationOptions;
  #state: number = DeviceState.RUNNING;
  /** Outgoing bytes not yet read. */
  #out: Uint8Array[] = [];
  /** Encoded section bytes already queued, by id (for "what changed since"). */
  #sent = new Map<number, string>();
  /** Incoming bytes. */
  #in: Uint8Array[] = [];
  #inBytes = 0;
  #busy = false;
  /** This machine's pause of the target is in force. */
  #paused = false;
  /** The client left while a state change ran: apply {@link clientGone} when it ends. */
  #goneDuringSet = false;

  constructor(
    target: MigrationTarget,
    opts: MigrationOptions = { maxIncoming: DEFAULT_MAX_INCOMING },
  ) {
    this.target = target;
    this.#opts = opts;
  }

  /** The current state (`DeviceState`). */
  get state(): number {
    return this.#state;
  }

  /** Whether the state machine holds the device paused. */
  get holdsPause(): boolean {
    return this.#paused;
  }

  /**
   * Moves to `to` along the path of the state table (spec: the reply is sent once the
   * transition is complete). Throws `ErrnoError(EINVAL)` for a refused transition (state
   * unchanged) or the error of a failed arc.
   */
  async set(to: number): Promise<void> {
    if (this.#busy) throw new ErrnoError(Errno.EBUSY, "a state change is in progress");
    const path = pathTo(this.#state, to);
    if (!path) {
      throw new ErrnoError(
        Errno.EINVAL,
        `migration: ${stateName(this.#state)} -> ${stateName(to)} is not a valid transition`,
      );
    }
    this.#busy = true;
    try {
      for (const next of path) {
        const action = arcAction(this.#state, next);
        try {
          await ACTIONS[action](this);
        } catch (e) {
          if (!(e instanceof ErrnoError)) this.#state = DeviceState.ERROR;
          throw e;
        }
        this.#state = next;
      }
    } finally {
      this.#busy = false;
      if (this.#goneDuringSet) {
        this.#goneDuringSet = false;
        this.clientGone();
      }
    }
  }

  /**
   * MIG_DATA_READ: up to `max` bytes of the outgoing stream (fewer: the end for now). Only in
   * PRE_COPY and STOP_COPY (EINVAL otherwise).
   */
  read(max: number): Uint8Array {
    const s = this.#state;
    if (s !== DeviceState.PRE_COPY && s !== DeviceState.STOP_COPY) {
      throw new ErrnoError(Errno.EINVAL, `MIG_DATA_READ in state ${stateName(s)}`);
    }
    if (s === DeviceState.PRE_COPY && this.#pending() === 0) this.#earlyFrame();
    const out = new Uint8Array(Math.min(max, this.#pending()));
    let at = 0;
    while (at < out.length) {
      const head = this.#out[0];
      const n = Math.min(head.length, out.length - at);
      out.set(head.subarray(0, n), at);
      at += n;
      if (n === head.length) this.#out.shift();
      else this.#out[0] = head.subarray(n);
    }
    return out;
  }

  /** MIG_DATA_WRITE: appends to the incoming stream (RESUMING only; EINVAL otherwise). */
  write(data: Uint8Array): void {
    if (this.#state !== DeviceState.RESUMING) {
      throw new ErrnoError(Errno.EINVAL, `MIG_DATA_WRITE in state ${stateName(this.#state)}`);
    }
    if (this.#inBytes + data.length > this.#opts.maxIncoming) {
      throw new ErrnoError(
        Errno.E2BIG,
        `migration stream longer than ${this.#opts.maxIncoming} bytes`,
      );
    }
    this.#in.push(data.slice());
    this.#inBytes += data.length;
  }

  /**
   * DEVICE_RESET: back to RUNNING, any transfer dropped. Returns whether the state machine held
   * a pause of the target, which the caller (who resets the device) now ends.
   */
  reset(): boolean {
    const held = this.#paused;
    this.#paused = false;
    this.#state = DeviceState.RUNNING;
    this.#dropTransfer();
    return held;
  }

  /**
   * The client left: a transfer in progress is abandoned (PRE_COPY → RUNNING, STOP_COPY and
   * RESUMING → STOP); a stopped device stays stopped for the next client, like the rest of the
   * device state (spec, "Client Disconnection").
   */
  clientGone(): void {
    if (this.#busy) {
      this.#goneDuringSet = true; // the state change in progress ends first
      return;
    }
    if (this.#state === DeviceState.PRE_COPY) this.#state = DeviceState.RUNNING;
    if (this.#state === DeviceState.STOP_COPY || this.#state === DeviceState.RESUMING) {
      this.#state = DeviceState.STOP;
    }
    this.#dropTransfer();
  }

  // --- arc actions ---------------------------------------------------------------------------

  /** RUNNING → STOP (and the first half of PRE_COPY → STOP_COPY). */
  async pauseTarget(): Promise<void> {
    this.#paused = true;
    await this.target.pause();
  }

  /** STOP → RUNNING. */
  resumeTarget(): void {
    this.#paused = false;
    this.target.resume();
  }

  /** RUNNING → PRE_COPY. */
  beginPreCopy(): void {
    this.#dropTransfer();
  }

  /** STOP → STOP_COPY, PRE_COPY → STOP_COPY (paused): the rest of the state, FINAL. */
  finalFrame(): void {
    this.#queue(this.target.save(), true);
  }

  /** STOP_COPY → STOP, PRE_COPY → RUNNING. */
  endSave(): void {
    this.#dropTransfer();
  }

  /** STOP → RESUMING. */
  beginLoad(): void {
    this.#dropTransfer();
  }

  /** RESUMING → STOP: decode and load; on failure the collected bytes are dropped too. */
  async load(): Promise<void> {
    const bytes = concatBytes(this.#in);
    this.#in = [];
    this.#inBytes = 0;
    const { deviceType, stateVersion } = this.target;
    try {
      const d = decodeStream(bytes, { deviceType, maxStateVersion: stateVersion });
      await this.target.restore(d.sections, d.stateVersion);
    } catch (e) {
      if (e instanceof ErrnoError) throw e;
      throw new ErrnoError(Errno.EINVAL, `migration stream: ${(e as Error).message}`);
    }
  }

  // --- internals -----------------------------------------------------------------------------

  #pending(): number {
    return this.#out.reduce((n, b) => n + b.length, 0);
  }

  /** PRE_COPY: a frame of the early sections that changed since they were last queued. */
  #earlyFrame(): void {
    this.#queue(this.target.saveEarly(), false);
  }

  /** Queues a frame of the sections that differ from what was sent (a FINAL one always). */
  #queue(sections: Section[], final: boolean): void {
    const changed: Section[] = [];
    for (const s of sections) {
      const key = toHex(encodeRecord(s.data));
      if (this.#sent.get(s.id) === key) continue;
      this.#sent.set(s.id, key);
      changed.push(s);
    }
    if (!final && changed.length === 0) return;
    const { deviceType, stateVersion } = this.target;
    this.#out.push(encodeFrame({ deviceType, stateVersion }, changed, final));
  }

  #dropTransfer(): void {
    this.#out = [];
    this.#sent.clear();
    this.#in = [];
    this.#inBytes = 0;
  }
}
