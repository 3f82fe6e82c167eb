/**
 * Device options: the table a device type declares (name, help, value kind, required), and
 * the parsing and checking of `--device=TYPE,key=value,...` against it. Everything a value can
 * be wrong about is found here, before anything is opened: a device's factory only ever sees
 * options that passed.
 *
 * The syntax is QEMU's: options separated by commas, a comma inside a value written twice
 * (`file=/images/a,,b.img` is the file `/images/a,b.img`).
 *
 * @module
 */
import { parseMac } from "./net/mac.ts";

/** Options of one `--device` argument, by name (values as given, unescaped). */
export type DeviceOptions = Map<string, string>;

/**
 * What a value may be: `bool` (on|off, yes|no, true|false, 1|0), `size` (bytes, suffixes K M G
 * T), `uint` (a decimal count), `mac` (xx:xx:xx:xx:xx:xx), `path` (a file name), `text`, or
 * one of a list of words.
 */
export type OptionValue = "bool" | "size" | "uint" | "mac" | "path" | "text" | readonly string[];

/** One option of a device type. */
export interface DeviceOptionSpec {
  help: string;
  required?: boolean;
  /** What values are accepted (default "text"). */
  value?: OptionValue;
  /** A further check of the value (range, length): throws with the reason. */
  check?(value: string): void;
}

/** Words a `bool` option takes. */
export const BOOL_WORDS = { on: ["on", "yes", "true", "1"], off: ["off", "no", "false", "0"] };

/** Parses "on"/"off" (and the usual synonyms) of a boolean option. */
export function boolOption(opts: ReadonlyMap<string, string>, key: string, def = false): boolean {
  const v = opts.get(key);
  if (v === undefined) return def;
  if (BOOL_WORDS.on.includes(v)) return true;
  if (BOOL_WORDS.off.includes(v)) return false;
  throw new Error(`${key}=${v}: expected on or off`);
}

/** Parses a size: "4096", "64K", "16M", "1G", "2T" (binary multiples); NaN when it is none. */
export function parseSizeText(text: string): number {
  const m = /^(\d+)([KMGT]?)$/i.exec(text.trim());
  if (!m) return NaN;
  const mul = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[m[2].toUpperCase()]!;
  const n = Number(m[1]) * mul;
  return Number.isSafeInteger(n) ? n : NaN;
}

/** Parses an option's size value; throws naming the option. */
export function sizeOption(opts: ReadonlyMap<string, string>, key: string, def: number): number {
  const v = opts.get(key);
  if (v === undefined) return def;
  const n = parseSizeText(v);
  if (Number.isNaN(n)) throw new Error(`${key}=${v}: not a size (bytes, or with K, M, G, T)`);
  return n;
}

/** Parses an option's unsigned integer value; throws naming the option. */
export function uintOption(opts: ReadonlyMap<string, string>, key: string, def: number): number {
  const v = opts.get(key);
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new Error(`${key}=${v}: not a number`);
  }
  return Number(v);
}

/** Checks one value against its spec; throws with a message naming the option. */
export function checkOptionValue(key: string, value: string, spec: DeviceOptionSpec): void {
  const kind = spec.value ?? "text";
  const one = new Map([[key, value]]);
  if (Array.isArray(kind)) {
    if (!kind.includes(value)) throw new Error(`${key}=${value}: expected ${kind.join(" or ")}`);
  } else if (kind === "bool") {
    boolOption(one, key);
  } else if (kind === "size") {
    sizeOption(one, key, 0);
  } else if (kind === "uint") {
    uintOption(one, key, 0);
  } else if (kind === "mac") {
    try {
      parseMac(value);
    } catch (e) {
      throw new Error(`${key}=${value}: ${(e as Error).message}`);
    }
  } else if (kind === "path" && value === "") {
    throw new Error(`${key}= needs a file name`);
  }
  spec.check?.(value);
}

/** Splits QEMU-style option text at single commas; `,,` stands for a comma. */
export function splitOptionList(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== ",") cur += text[i];
    else if (text[i + 1] === ",") {
      cur += ",";
      i++;
    } else {
      out.push(cur);
      cur = "";
    }
  }
  out.push(cur);
  return out;
}

/** Writes a value for an option list: commas doubled (the inverse of {@link splitOptionList}). */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/**
 * Parses `key=value,...` against `specs`: unknown keys, keys given twice, values of the wrong
 * kind and missing required options throw, naming the option.
 */
export function parseOptionList(
  what: string,
  items: readonly string[],
  specs: Readonly<Record<string, DeviceOptionSpec>>,
): DeviceOptions {
  const options: DeviceOptions = new Map();
  for (const kv of items) {
    const eq = kv.indexOf("=");
    if (eq <= 0) {
      throw new Error(
        kv === ""
          ? `empty option in the list of ${what}`
          : `${what} option "${kv}" is not key=value`,
      );
    }
    const key = kv.slice(0, eq);
    const spec = specs[key];
    if (!spec) {
      throw new Error(
        `${what} has no option "${key}" (its options: ${Object.keys(specs).join(", ")})`,
      );
    }
    if (options.has(key)) throw new Error(`${what} option ${key}= is given twice`);
    const value = kv.slice(eq + 1);
    checkOptionValue(key, value, spec);
    options.set(key, value);
  }
  for (const [key, spec] of Object.entries(specs)) {
    if (spec.required && !options.has(key)) throw new Error(`${what} needs ${key}=...`);
  }
  return options;
}
