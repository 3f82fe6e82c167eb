/**
 * Hex helpers for traces, logs and golden-byte tests.
 *
 * @module
 */

/**
 * Parses hex text into bytes. Whitespace, `_`, `|` and `#`/`//` comments to the end of a line
 * are ignored, so golden messages can be written one field per line. Throws `SyntaxError` on an
 * odd number of digits or a non-hex character (this parses our own literals, not peer input).
 */
export function fromHex(text: string): Uint8Array {
  const digits = text.replace(/(#|\/\/)[^\n]*/g, "").replace(/[\s_|]/g, "");
  if (digits.length % 2 !== 0) throw new SyntaxError(`odd number of hex digits: ${digits.length}`);
  if (!/^[0-9a-fA-F]*$/.test(digits)) throw new SyntaxError("non-hex character in hex text");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Formats bytes as lowercase hex, optionally with `sep` between bytes. */
export function toHex(bytes: Uint8Array, sep = ""): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(sep);
}
