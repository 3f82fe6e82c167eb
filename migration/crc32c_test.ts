import assert from "node:assert/strict";
import { crc32c } from "./crc32c.ts";

Deno.test("crc32c: the standard check values", () => {
  const ascii = (s: string) => new TextEncoder().encode(s);
  assert.equal(crc32c(ascii("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 zero bytes
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43); // RFC 3720 B.4: 32 x 0xff
});

Deno.test("crc32c: can be continued over pieces", () => {
  const b = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
  assert.equal(crc32c(b.subarray(300), crc32c(b.subarray(0, 300))), crc32c(b));
});
