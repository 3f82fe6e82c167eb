import assert from "node:assert/strict";
import { decodeRecord, encodeRecord, MAX_RECORD_DEPTH, RecordReader } from "./record.ts";
import { Errno, VfioUserError } from "./errors.ts";
import { ErrnoError } from "../sys/errno.ts";
import { toHex as hex } from "./hex.ts";

function refused(bytes: number[], re: RegExp): void {
  assert.throws(
    () => decodeRecord(Uint8Array.from(bytes)),
    (e) => e instanceof VfioUserError && e.errno === Errno.EINVAL && re.test(e.message),
  );
}

Deno.test("record: golden bytes of every kind", () => {
  const cases: [Parameters<typeof encodeRecord>[0], string][] = [
    [null, "00"],
    [false, "01"],
    [true, "02"],
    [0, "0300"],
    [1, "0302"],
    [-1, "0301"],
    [64, "038001"],
    [0xffff, "03feff07"],
    [0x1234n, "043412000000000000"],
    [0xffff_ffff_ffff_ffffn, "04ffffffffffffffff"],
    ["ab", "05026162"],
    [Uint8Array.of(1, 2, 3), "0603010203"],
    [[1, true], "0702030202"],
    [{ a: 1, bc: null }, "080201610302026263" + "00"],
  ];
  for (const [v, golden] of cases) {
    const bytes = encodeRecord(v);
    assert.equal(hex(bytes), golden, `encoding of ${String(v)}`);
    assert.deepEqual(decodeRecord(bytes), v);
  }
});

Deno.test("record: decode then encode gives the same bytes (canonical)", () => {
  const rec = {
    regs: Uint8Array.from({ length: 300 }, (_, i) => i & 0xff),
    queues: [{ size: 256, desc: 0x1000n, enabled: true }, { size: 4, desc: 0n, enabled: false }],
    name: "virtio-blk ✓",
    nested: { deeper: { values: [-5, 0, 2 ** 51, -(2 ** 51)] } },
  };
  const bytes = encodeRecord(rec);
  assert.deepEqual(encodeRecord(decodeRecord(bytes)), bytes);
});

Deno.test("record: the encoder refuses what is not plain data", () => {
  assert.throws(() => encodeRecord(1.5), RangeError);
  assert.throws(() => encodeRecord(2 ** 52), RangeError);
  assert.throws(() => encodeRecord(-1n), RangeError);
  assert.throws(() => encodeRecord(1n << 64n), RangeError);
  assert.throws(() => encodeRecord({ a: undefined } as never), RangeError);
  let deep: unknown = 1;
  for (let i = 0; i <= MAX_RECORD_DEPTH + 1; i++) deep = [deep];
  assert.throws(() => encodeRecord(deep as never), RangeError);
});

Deno.test("record: malformed input is refused with EINVAL, never a crash", () => {
  refused([], /ends early/);
  refused([0x09], /unknown tag/);
  refused([0x03, 0x80, 0x00], /non-minimal/);
  refused([0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], /beyond 2\^53/);
  refused([0x04, 1, 2, 3], /stream ends/);
  refused([0x05, 0x02, 0xc3, 0x28], /UTF-8/);
  refused([0x06, 0x05, 1, 2], /stream ends/);
  refused([0x07, 0xff, 0xff, 0x03], /ends early/);
  refused([0x08, 0x02, 0x01, 0x61, 0x00, 0x01, 0x61, 0x00], /duplicate key "a"/);
  refused([0x00, 0x00], /1 trailing bytes/);
  const deep = [...new Array(MAX_RECORD_DEPTH + 2).fill(0x07).flatMap((t) => [t, 1]), 0x00];
  refused(deep, /nested deeper/);
});

Deno.test("record: random bytes never crash the decoder", () => {
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
  for (let i = 0; i < 3000; i++) {
    const b = Uint8Array.from({ length: Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 12));
    try {
      decodeRecord(b);
    } catch (e) {
      assert.ok(e instanceof VfioUserError && e.errno === Errno.EINVAL, String(e));
    }
  }
});

Deno.test("record reader: typed fields, ranges, unknown fields", () => {
  const r = new RecordReader(
    decodeRecord(encodeRecord({ n: 7, big: 5n, ok: true, s: "x", b: Uint8Array.of(1), l: [{}] })),
    "dev",
  );
  assert.equal(r.int("n", 0, 7), 7);
  assert.equal(r.u64("big"), 5n);
  assert.equal(r.bool("ok"), true);
  assert.equal(r.str("s", 4), "x");
  assert.deepEqual(r.bytes("b", 1), Uint8Array.of(1));
  assert.equal(r.recs("l", 1, true).length, 1);
  r.done();
  const bad = (f: (r: RecordReader) => unknown, re: RegExp) => {
    const rr = new RecordReader({ n: 7, big: 5n, extra: 1 }, "dev");
    assert.throws(
      () => f(rr),
      (e) => e instanceof ErrnoError && e.errno === Errno.EINVAL && re.test(e.message),
    );
  };
  bad((r) => r.int("n", 0, 6), /dev\.n: 7 not in \[0, 6\]/);
  bad((r) => r.int("big", 0, 6), /not an integer/);
  bad((r) => r.u64("n"), /not a u64/);
  bad((r) => r.bool("missing"), /dev\.missing: missing/);
  bad((r) => r.bytes("n", 1), /not bytes/);
  bad((r) => r.rec("n"), /not a record/);
  bad((r) => {
    r.int("n", 0, 7);
    r.u64("big");
    r.done();
  }, /dev\.extra: unknown field/);
  assert.throws(() => new RecordReader([], "x"), /not a record/);
  assert.throws(() => new RecordReader(Uint8Array.of(1), "x"), /not a record/);
});

Deno.test("record: a __proto__ key is an ordinary field", () => {
  const bytes = Uint8Array.from([0x08, 0x01, 0x09, ...new TextEncoder().encode("__proto__"), 0x02]);
  const v = decodeRecord(bytes) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(v, "__proto__")?.value, true);
  assert.deepEqual(encodeRecord(v as never), bytes);
});
