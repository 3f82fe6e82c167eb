import assert from "node:assert/strict";
import { fromHex, toHex } from "./hex.ts";

Deno.test("fromHex: ignores spaces, separators and comments", () => {
  assert.deepEqual(fromHex("01 02|03_04 # four\n// none\nFF"), new Uint8Array([1, 2, 3, 4, 255]));
  assert.deepEqual(fromHex(""), new Uint8Array(0));
});

Deno.test("fromHex: odd digit count and stray characters are syntax errors", () => {
  assert.throws(() => fromHex("abc"), SyntaxError);
  assert.throws(() => fromHex("zz"), SyntaxError);
});

Deno.test("toHex", () => {
  assert.equal(toHex(new Uint8Array([0, 15, 255])), "000fff");
  assert.equal(toHex(new Uint8Array([1, 2]), " "), "01 02");
});
