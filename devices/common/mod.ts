/**
 * Parts every device model may build on (and the third one should not have to write again):
 * kick-driven serialized work with pause ({@link SerialRunner}), a count of work in flight that
 * reset and pause wait for ({@link IdleTracker}), register files as tables and byte-granular
 * register access ({@link RegisterFile}, {@link dwordRead}, {@link dwordWrite}), and rings of
 * fixed-size entries in guest memory ({@link readEntries}, {@link writeEntries}).
 *
 * @module
 */
export { IdleTracker } from "./idle.ts";
export { dwordRead, dwordWrite, type Register, register, RegisterFile } from "./regs.ts";
export { entryAddr, readEntries, ringDistance, type RingLayout, writeEntries } from "./ring.ts";
export { SerialRunner } from "./serial_runner.ts";
