/**
 * Logging through @logtape/logtape to stderr (stdout stays free for output meant for users,
 * e.g. the QEMU command line). Categories start with "vfud".
 *
 * @module
 */
import {
  configure,
  dispose,
  getLogger,
  getStreamSink,
  getTextFormatter,
  jsonLinesFormatter,
  type Logger,
  type LogLevel,
} from "@logtape/logtape";

/** Log levels accepted by --log-level. */
export const LOG_LEVELS: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
];

/** Sets up the root "vfud" logger. `format` "text" or "json" (JSON lines). */
export async function setupLogging(level: LogLevel, format: "text" | "json"): Promise<void> {
  const formatter = format === "json" ? jsonLinesFormatter : getTextFormatter({
    timestamp: "date-time-timezone",
    value: "bare",
  });
  await configure({
    reset: true,
    sinks: { stderr: getStreamSink(Deno.stderr.writable, { formatter }) },
    loggers: [
      { category: ["vfud"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** The logger of a vfud component. */
export function logger(...category: string[]): Logger {
  return getLogger(["vfud", ...category]);
}

/** Flushes and closes the log sinks (call before exiting, or buffered lines are lost). */
export async function closeLogging(): Promise<void> {
  await dispose();
}
