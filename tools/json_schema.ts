/**
 * A tiny JSON Schema validator for the subset contrib/vfio-user/vfio-user.schema.json uses:
 * `type`, `properties`, `required`, `additionalProperties`, `enum`, `const`, `items`,
 * `minItems`, `uniqueItems`, `minLength`, `pattern`. Annotation keywords are ignored; any other
 * keyword is an error, so a schema can never pass documents by using something unsupported.
 *
 * @module
 */

/** A (sub)schema. */
export type Schema = { [keyword: string]: unknown };

const ANNOTATIONS = new Set([
  "$schema",
  "$id",
  "$comment",
  "title",
  "description",
  "examples",
  "default",
]);
const SUPPORTED = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "enum",
  "const",
  "items",
  "minItems",
  "uniqueItems",
  "minLength",
  "pattern",
]);

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeMatches(v: unknown, want: string): boolean {
  const t = typeOf(v);
  return t === want || (want === "number" && t === "integer");
}

/**
 * Validates `value` against `schema`; returns the violations as "path: problem" lines (empty
 * when valid). Throws when the schema uses an unsupported keyword.
 */
export function validate(schema: Schema, value: unknown, path = ""): string[] {
  const errors: string[] = [];
  const at = path || "/";
  for (const k of Object.keys(schema)) {
    if (!ANNOTATIONS.has(k) && !SUPPORTED.has(k)) {
      throw new Error(`schema at ${at}: unsupported keyword "${k}"`);
    }
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type as string[] : [schema.type as string];
    if (!types.some((t) => typeMatches(value, t))) {
      return [`${at}: expected ${types.join(" or ")}, got ${typeOf(value)}`];
    }
  }
  if (schema.enum && !(schema.enum as unknown[]).some((e) => e === value)) {
    errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if ("const" in schema && schema.const !== value) {
    errors.push(`${at}: expected ${JSON.stringify(schema.const)}`);
  }
  if (typeof value === "string") {
    if (typeof schema.minLength === "number" && [...value].length < schema.minLength) {
      errors.push(`${at}: shorter than ${schema.minLength}`);
    }
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(value)) {
      errors.push(`${at}: does not match ${schema.pattern}`);
    }
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) {
      errors.push(`${at}: fewer than ${schema.minItems} items`);
    }
    if (schema.uniqueItems === true) {
      const seen = new Set(value.map((v) => JSON.stringify(v)));
      if (seen.size !== value.length) errors.push(`${at}: items are not unique`);
    }
    if (schema.items) {
      value.forEach((v, i) => errors.push(...validate(schema.items as Schema, v, `${path}/${i}`)));
    }
  }
  if (typeOf(value) === "object") {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const r of (schema.required ?? []) as string[]) {
      if (!(r in obj)) errors.push(`${at}: missing required property "${r}"`);
    }
    for (const [k, v] of Object.entries(obj)) {
      if (k in props) errors.push(...validate(props[k], v, `${path}/${k}`));
      else if (schema.additionalProperties === false) {
        errors.push(`${at}: unexpected property "${k}"`);
      } else if (typeof schema.additionalProperties === "object") {
        errors.push(...validate(schema.additionalProperties as Schema, v, `${path}/${k}`));
      }
    }
  }
  return errors;
}
