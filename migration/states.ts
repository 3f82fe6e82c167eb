/**
 * The device migration state machine of migration v2 (spec, "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE",
 * "Direct State Transitions", "Complex State Transitions"; Linux `enum vfio_device_mig_state`), as
 * tables. vfud supports STOP_COPY and PRE_COPY but not P2P (the spec marks RUNNING_P2P and
 * PRE_COPY_P2P unused in vfio-user), so the machine has the states STOP, RUNNING, STOP_COPY,
 * RESUMING, PRE_COPY and ERROR.
 *
 * - {@link ARCS}: the direct transitions the server implements, each with the action it takes.
 * - {@link NEXT}: for every (current, requested) pair the first arc of the path to take: the
 *   shortest path over {@link ARCS} that has no saving-group state (PRE_COPY, STOP_COPY) inside
 *   it, only at its ends. STOP_COPY → PRE_COPY is refused explicitly (spec); so is everything
 *   from ERROR (left only by DEVICE_RESET), and requests for ERROR or a P2P state.
 *
 * A test derives NEXT from ARCS by breadth-first search and checks every pair.
 *
 * @module
 */
import { DeviceState } from "../protocol/feature.ts";

export { DeviceState };

const { ERROR, STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY } = DeviceState;

/** What the server does on a direct arc (see migration/controller.ts). */
export type ArcAction =
  /** RUNNING → STOP: the device stops (pause). */
  | "pause"
  /** STOP → RUNNING: the device runs again (resume). */
  | "resume"
  /** STOP → STOP_COPY: the device state is saved into the outgoing stream. */
  | "save"
  /** STOP_COPY → STOP, PRE_COPY → RUNNING: the outgoing stream is dropped. */
  | "end-save"
  /** STOP → RESUMING: an empty incoming stream is opened. */
  | "begin-load"
  /** RESUMING → STOP: the incoming stream is validated and loaded into the device. */
  | "load"
  /** RUNNING → PRE_COPY: an outgoing stream starts with what can be sent while running. */
  | "pre-copy"
  /** PRE_COPY → STOP_COPY: the device stops, the rest of its state joins the stream. */
  | "pause-save";

/** The direct arcs (spec, "Direct State Transitions"), without the P2P ones. */
export const ARCS: ReadonlyMap<number, ReadonlyMap<number, ArcAction>> = new Map([
  [RUNNING, new Map<number, ArcAction>([[STOP, "pause"], [PRE_COPY, "pre-copy"]])],
  [
    STOP,
    new Map<number, ArcAction>([[RUNNING, "resume"], [STOP_COPY, "save"], [
      RESUMING,
      "begin-load",
    ]]),
  ],
  [STOP_COPY, new Map<number, ArcAction>([[STOP, "end-save"]])],
  [RESUMING, new Map<number, ArcAction>([[STOP, "load"]])],
  [PRE_COPY, new Map<number, ArcAction>([[RUNNING, "end-save"], [STOP_COPY, "pause-save"]])],
]);

/** States a client may request (all but ERROR and the P2P states). */
export const REQUESTABLE: readonly number[] = [STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY];

/** The saving group: may only start or end a path. */
export const SAVING: ReadonlySet<number> = new Set([STOP_COPY, PRE_COPY]);

// deno-fmt-ignore
/**
 * First step from the current state (row) towards the requested one (column); absent = refused.
 * A state to itself needs no step.
 */
export const NEXT: ReadonlyMap<number, ReadonlyMap<number, number>> = new Map([
  //              to:  STOP                RUNNING             STOP_COPY             RESUMING             PRE_COPY
  [STOP,      new Map([                    [RUNNING, RUNNING], [STOP_COPY, STOP_COPY], [RESUMING, RESUMING], [PRE_COPY, RUNNING]])],
  [RUNNING,   new Map([[STOP, STOP],                           [STOP_COPY, STOP],      [RESUMING, STOP],     [PRE_COPY, PRE_COPY]])],
  [STOP_COPY, new Map([[STOP, STOP],       [RUNNING, STOP],                            [RESUMING, STOP]                          ])],
  [RESUMING,  new Map([[STOP, STOP],       [RUNNING, STOP],    [STOP_COPY, STOP],                            [PRE_COPY, STOP]    ])],
  [PRE_COPY,  new Map([[STOP, RUNNING],    [RUNNING, RUNNING], [STOP_COPY, STOP_COPY], [RESUMING, RUNNING]                       ])],
  [ERROR,     new Map<number, number>()],
]);

/** Names of the states, for messages. */
export function stateName(s: number): string {
  const e = Object.entries(DeviceState).find(([, v]) => v === s);
  return e ? e[0] : `state ${s}`;
}

/**
 * The whole path from `from` to `to` (the states after each arc, `to` last; empty when they are
 * equal), or undefined when the transition is refused.
 */
export function pathTo(from: number, to: number): number[] | undefined {
  if (from === to) return REQUESTABLE.includes(to) ? [] : undefined;
  const path: number[] = [];
  let at = from;
  while (at !== to) {
    const next = NEXT.get(at)?.get(to);
    if (next === undefined) return undefined;
    path.push(next);
    at = next;
  }
  return path;
}

/** The action of the direct arc `from → to`. */
export function arcAction(from: number, to: number): ArcAction {
  const a = ARCS.get(from)?.get(to);
  if (!a) throw new Error(`no arc ${stateName(from)} -> ${stateName(to)}`);
  return a;
}

/** Whether the device is stopped (no DMA, no interrupts, no new work) in state `s`. */
export function isStopped(s: number): boolean {
  return s === STOP || s === STOP_COPY || s === RESUMING;
}
