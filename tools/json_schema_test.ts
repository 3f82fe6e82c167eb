import assert from "node:assert/strict";
import { type Schema, validate } from "./json_schema.ts";

const schema: Schema = {
  title: "t",
  type: "object",
  required: ["a"],
  additionalProperties: false,
  properties: {
    a: { type: "string", minLength: 1, pattern: "^/" },
    e: { enum: ["x", "y"] },
    n: { type: ["integer", "null"] },
    t: { type: "array", items: { type: "string" }, uniqueItems: true, minItems: 1 },
  },
};

Deno.test("json_schema: a valid document has no errors", () => {
  assert.deepEqual(validate(schema, { a: "/bin", e: "x", n: 3, t: ["p", "q"] }), []);
  assert.deepEqual(validate(schema, { a: "/", n: null }), []);
});

Deno.test("json_schema: each keyword reports its violation with a path", () => {
  assert.deepEqual(validate(schema, []), ["/: expected object, got array"]);
  assert.deepEqual(validate(schema, {}), ['/: missing required property "a"']);
  assert.deepEqual(validate(schema, { a: "rel" }), ["/a: does not match ^/"]);
  assert.deepEqual(validate(schema, { a: "" }), ["/a: shorter than 1", "/a: does not match ^/"]);
  assert.deepEqual(validate(schema, { a: "/", z: 1 }), ['/: unexpected property "z"']);
  assert.deepEqual(validate(schema, { a: "/", e: "w" }), ['/e: "w" is not one of ["x","y"]']);
  assert.deepEqual(validate(schema, { a: "/", n: 1.5 }), [
    "/n: expected integer or null, got number",
  ]);
  assert.deepEqual(validate(schema, { a: "/", t: ["p", "p"] }), ["/t: items are not unique"]);
  assert.deepEqual(validate(schema, { a: "/", t: [1] }), ["/t/0: expected string, got integer"]);
  assert.deepEqual(validate(schema, { a: "/", t: [] }), ["/t: fewer than 1 items"]);
});

Deno.test("json_schema: unsupported keywords are refused, not ignored", () => {
  assert.throws(() => validate({ oneOf: [] }, 1), /unsupported keyword "oneOf"/);
});
