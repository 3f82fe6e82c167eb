/**
 * Logging through @logtape/logtape. Categories start with "vfud". Three formats:
 *
 * - `text`: for a terminal: local time, level, category, message (values bare, never quoted).
 * - `json`: one JSON object per line (`@timestamp`, `level`, `message`, `logger`, `properties`).
 * - `journal`: for systemd's journal. Each record goes natively to the journal socket with
 *   structured fields (PRIORITY, SYSLOG_IDENTIFIER, VFUD_DEVICE, VFUD_SOCKET, VFUD_SESSION, ...;
 *   see {@link journalFields}); a record the socket cannot take (no journald there, or its queue
 *   is full) goes to stderr as a line journald's stream parser understands: a `<N>` syslog
 *   priority prefix and no timestamp (journald adds its own). The default when stderr is
 *   connected to the journal (JOURNAL_STREAM names stderr's device and inode), as systemd
 *   documents for services.
 *
 * Writing never blocks the event loop and never fails the program: stderr is written
 * asynchronously, and a line that cannot be written (a full disk behind stderr, a closed pipe)
 * is dropped and counted, never thrown (see {@link StderrWriter}).
 *
 * @module
 */
import {
  configure,
  dispose,
  getLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";
import { fstatFd } from "./files.ts";
import { closeFd } from "./ffi.ts";
import { openDatagramSocket, trySendDatagram } from "./socket.ts";
import { Errno } from "./errno.ts";

/** Log levels accepted by --log-level. */
export const LOG_LEVELS: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
];

/** Log formats accepted by --log-format. */
export const LOG_FORMATS = ["text", "json", "journal"] as const;
/** One of {@link LOG_FORMATS}. */
export type LogFormat = typeof LOG_FORMATS[number];

/** Everything a thread needs to set up logging the same way (structured-clone safe). */
export interface LogConfig {
  level: LogLevel;
  format: LogFormat;
  /** Fields of every record: device type, socket, ... (JSON properties, VFUD_* journal fields). */
  context?: Record<string, string>;
}

/** Where journald listens for native entries (sd_journal_send). */
export const JOURNAL_SOCKET = "/run/systemd/journal/socket";

/** syslog priority of each level (journald's PRIORITY=, the `<N>` stream prefix). */
export const SYSLOG_PRIORITY: Readonly<Record<LogLevel, number>> = {
  fatal: 2,
  error: 3,
  warning: 4,
  info: 6,
  debug: 7,
  trace: 7,
};

const ABBREVIATION: Readonly<Record<LogLevel, string>> = {
  fatal: "FTL",
  error: "ERR",
  warning: "WRN",
  info: "INF",
  debug: "DBG",
  trace: "TRC",
};

/**
 * True when stderr is the journal: JOURNAL_STREAM ("DEV:INODE", set by systemd for services
 * whose stderr it connected to journald) matches stderr's device and inode. A variable
 * inherited by a child whose stderr went elsewhere does not match.
 */
export function stderrIsJournal(env: { get(k: string): string | undefined } = Deno.env): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.get("JOURNAL_STREAM") ?? "");
  if (!m) return false;
  try {
    const st = fstatFd(2);
    return st.dev === BigInt(m[1]) && st.ino === BigInt(m[2]);
  } catch {
    return false;
  }
}

/** The format when --log-format is not given: journal under journald, else text. */
export function defaultLogFormat(): LogFormat {
  return stderrIsJournal() ? "journal" : "text";
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** A value as a person reads it: strings bare, errors by message, objects as JSON. */
export function renderValue(v: unknown): string {
  if (typeof v === "string") return v;
  if (v instanceof Error) return v.message;
  if (typeof v === "bigint" || typeof v === "number" || typeof v === "boolean") return String(v);
  if (v === undefined || v === null) return String(v);
  try {
    return JSON.stringify(v, (_k, x) => typeof x === "bigint" ? x.toString() : x);
  } catch {
    return String(v);
  }
}

/** The record's message with its values rendered bare. */
export function renderMessage(record: Pick<LogRecord, "message">): string {
  return record.message.map((part, i) => i % 2 === 0 ? part as string : renderValue(part))
    .join("");
}

/** The category below "vfud" ("session-1", "device·virtio-blk"), or "" for vfud itself. */
function subCategory(record: Pick<LogRecord, "category">): string {
  return record.category.slice(record.category[0] === "vfud" ? 1 : 0).join("·");
}

/** The message as the journal shows it: the sub-category, if any, in front. */
function journalMessage(record: LogRecord): string {
  const sub = subCategory(record);
  return sub ? `${sub}: ${renderMessage(record)}` : renderMessage(record);
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** `2026-12-07 01:30:12.025 +01:00 [ERR] vfud·session-1: message` */
export function formatText(record: LogRecord): string {
  const d = new Date(record.timestamp);
  const off = -d.getTimezoneOffset();
  const tz = `${off < 0 ? "-" : "+"}${pad(Math.floor(Math.abs(off) / 60))}:${
    pad(Math.abs(off) % 60)
  }`;
  const time = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.` +
    `${pad(d.getMilliseconds(), 3)} ${tz}`;
  const text = sanitizeLine(renderMessage(record));
  return `${time} [${ABBREVIATION[record.level]}] ${record.category.join("·")}: ${text}\n`;
}

/** JSON-safe copy of properties (bigints as strings, errors as messages). */
function jsonProperties(p: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    out[k] = typeof v === "bigint" ? v.toString() : v instanceof Error ? v.message : v;
  }
  return out;
}

/** One JSON line: `@timestamp`, `level`, `message` (rendered, unquoted), `logger`, `properties`. */
export function formatJson(record: LogRecord, context: Record<string, string> = {}): string {
  const level = record.level === "warning" ? "WARN" : record.level.toUpperCase();
  const properties = { ...context, ...jsonProperties(record.properties) };
  return JSON.stringify({
    "@timestamp": new Date(record.timestamp).toISOString(),
    level,
    message: renderMessage(record),
    logger: record.category.join("."),
    properties,
  }, (_k, x) => typeof x === "bigint" ? x.toString() : x) + "\n";
}

/** Continuation lines of a multi-line message are indented: one record stays one entry. */
function sanitizeLine(text: string): string {
  return text.replace(/\r?\n/g, "\n    ");
}

/** `<N>message`: what journald's stream parser reads (priority prefix, no timestamp). */
export function formatJournalStream(record: LogRecord): string {
  const p = SYSLOG_PRIORITY[record.level];
  return journalMessage(record).split(/\r?\n/).map((l) => `<${p}>${l}\n`).join("");
}

/** A journal field name from a property name: `maxXfer` → `VFUD_MAX_XFER`. */
export function fieldName(key: string): string {
  const snake = key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase().replace(
    /[^A-Z0-9_]/g,
    "_",
  );
  return `VFUD_${snake}`.replace(/_+/g, "_").slice(0, 64);
}

/**
 * The fields of one native journal entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=vfud,
 * VFUD_LOGGER (category), the context fields and every property as VFUD_<NAME>; an `errno`
 * property also as journald's well-known ERRNO=.
 */
export function journalFields(
  record: LogRecord,
  context: Record<string, string> = {},
): [string, string][] {
  const fields: [string, string][] = [
    ["MESSAGE", journalMessage(record)],
    ["PRIORITY", String(SYSLOG_PRIORITY[record.level])],
    ["SYSLOG_IDENTIFIER", "vfud"],
    ["VFUD_LOGGER", record.category.join(".")],
  ];
  const props: Record<string, unknown> = { ...context, ...record.properties };
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined) continue;
    fields.push([fieldName(k), renderValue(v)]);
    if (k === "errno" && typeof v === "number") fields.push(["ERRNO", String(v)]);
  }
  return fields;
}

/** Largest native entry sent (journald takes bigger ones through memfds; ours never need it). */
const JOURNAL_ENTRY_MAX = 64 << 10;

/**
 * Serializes fields in the native journal protocol: `KEY=value\n`, or for a value with a
 * newline `KEY\n` + its length as little-endian u64 + the value + `\n`.
 */
export function encodeJournalEntry(fields: readonly [string, string][]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (const [k, v] of fields) {
    let value = enc.encode(v);
    if (value.length > JOURNAL_ENTRY_MAX / 2) value = value.subarray(0, JOURNAL_ENTRY_MAX / 2);
    let part: Uint8Array;
    if (value.includes(0x0a)) {
      const key = enc.encode(`${k}\n`);
      part = new Uint8Array(key.length + 8 + value.length + 1);
      part.set(key);
      new DataView(part.buffer).setBigUint64(key.length, BigInt(value.length), true);
      part.set(value, key.length + 8);
      part[part.length - 1] = 0x0a;
    } else {
      part = enc.encode(`${k}=${new TextDecoder().decode(value)}\n`);
    }
    if (size + part.length > JOURNAL_ENTRY_MAX) break;
    parts.push(part);
    size += part.length;
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writers

/**
 * Asynchronous, never-failing stderr: lines queue (bounded) and are written in order; a write
 * error (ENOSPC, EPIPE, ...) drops what was queued and counts it instead of throwing, so a full
 * disk or a closed pipe behind stderr never stops vfud.
 */
export class StderrWriter {
  /** Lines dropped: the queue was full or the write failed. */
  dropped = 0;
  #queue: string[] = [];
  #draining: Promise<void> | undefined;
  readonly #max: number;
  readonly #out: { write(p: Uint8Array): Promise<number> };

  constructor(out: { write(p: Uint8Array): Promise<number> } = Deno.stderr, maxQueued = 4096) {
    this.#out = out;
    this.#max = maxQueued;
  }

  /** Queues `text` (one or more whole lines). */
  write(text: string): void {
    if (this.#queue.length >= this.#max) {
      this.dropped++;
      return;
    }
    this.#queue.push(text);
    this.#draining ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length) {
        const lines = this.#queue.splice(0);
        let buf = new TextEncoder().encode(lines.join(""));
        try {
          while (buf.length) buf = buf.subarray(await this.#out.write(buf));
        } catch {
          this.dropped += lines.length;
        }
      }
    } finally {
      this.#draining = undefined;
    }
  }

  /** True while a write is outstanding or lines wait for one. */
  get pending(): boolean {
    return this.#draining !== undefined;
  }

  /** Resolves once everything queued was written (or dropped), or after `timeoutMs`. */
  async flush(timeoutMs = 1000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => timer = setTimeout(r, timeoutMs));
    while (this.#draining) {
      if (await Promise.race([this.#draining.then(() => false), late.then(() => true)])) break;
    }
    clearTimeout(timer);
  }
}

/** Native journal entries over one datagram socket; false from send when it cannot take one. */
export class JournalSocket {
  readonly #fd: number;
  readonly #address: string;
  /** Set once journald proved absent (no socket): every later entry goes to the fallback. */
  #absent = false;

  constructor(address = JOURNAL_SOCKET) {
    this.#address = address;
    this.#fd = openDatagramSocket();
  }

  /** Sends one entry; false when it was not taken (absent journald, full queue). */
  send(entry: Uint8Array): boolean {
    if (this.#absent) return false;
    const err = trySendDatagram(this.#fd, this.#address, entry);
    if (err === 0) return true;
    if (err === Errno.ENOENT || err === Errno.ECONNREFUSED || err === Errno.ENOTDIR) {
      this.#absent = true;
    }
    return false;
  }

  close(): void {
    closeFd(this.#fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Set-up

let stderr = new StderrWriter();
let journal: JournalSocket | undefined;

/** A sink writing `format` to stderr (text, json) or to the journal (journal). */
function makeSink(format: LogFormat, context: Record<string, string>): Sink {
  if (format === "text") return (r) => stderr.write(formatText(r));
  if (format === "json") return (r) => stderr.write(formatJson(r, context));
  return (r) => {
    if (!journal?.send(encodeJournalEntry(journalFields(r, context)))) {
      stderr.write(formatJournalStream(r));
    }
  };
}

/** Sets up the root "vfud" logger (and its children) as `config` says. */
/** Bumped at every set-up: cached level checks ({@link tracing}) are redone after it. */
let configGeneration = 0;
const traceChecks = new WeakMap<Logger, { generation: number; on: boolean }>();

/**
 * Whether `log` writes trace records: `isEnabledFor("trace")` answered once per logger and
 * set-up (the per-request and per-message paths ask it every time, and logtape's own answer
 * walks its configuration).
 */
export function tracing(log: Logger): boolean {
  const c = traceChecks.get(log);
  if (c && c.generation === configGeneration) return c.on;
  const on = log.isEnabledFor("trace");
  traceChecks.set(log, { generation: configGeneration, on });
  return on;
}

export async function setupLogging(config: LogConfig): Promise<void> {
  configGeneration++;
  const context = config.context ?? {};
  if (config.format === "journal" && journal === undefined) {
    try {
      journal = new JournalSocket();
    } catch { /* no datagram socket: the stream fallback takes everything */ }
  }
  await configure({
    reset: true,
    sinks: { main: makeSink(config.format, context) },
    loggers: [
      { category: ["vfud"], lowestLevel: config.level, sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
}

/** The logger of a vfud component. */
export function logger(...category: string[]): Logger {
  return getLogger(["vfud", ...category]);
}

/**
 * Writes one record before (or without) any set-up, e.g. a usage error, in `format`: the same
 * line the configured sink would write (journal entries go to the journal).
 */
export async function logOnce(
  level: LogLevel,
  message: string,
  format: LogFormat,
  properties: Record<string, unknown> = {},
): Promise<void> {
  const record: LogRecord = {
    category: ["vfud"],
    level,
    message: [message],
    rawMessage: message,
    timestamp: Date.now(),
    properties,
  };
  if (format === "journal") {
    try {
      const j = new JournalSocket();
      const sent = j.send(encodeJournalEntry(journalFields(record)));
      j.close();
      if (sent) return;
    } catch { /* fall back to the stream */ }
  }
  const w = new StderrWriter();
  w.write(
    format === "json"
      ? formatJson(record)
      : format === "journal"
      ? formatJournalStream(record)
      : `vfud: ${message}\n`,
  );
  await w.flush();
}

/** Flushes and closes the log sinks (call before exiting, or queued lines are lost). */
export async function closeLogging(timeoutMs = 1000): Promise<void> {
  await dispose();
  await stderr.flush(timeoutMs);
  journal?.close();
  journal = undefined;
  stderr = new StderrWriter();
}

/**
 * True while a write to stderr is outstanding. A thread that blocks in sync FFI between events
 * (the serving Worker) must go round its event loop until it is not: the completion of the write
 * is seen, and the next queued lines written, only when that thread's event loop runs.
 */
export function logWritesPending(): boolean {
  return stderr.pending;
}

/** Lines stderr dropped so far (failed writes, full queue). */
export function droppedLogLines(): number {
  return stderr.dropped;
}
