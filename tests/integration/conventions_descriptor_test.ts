/**
 * The vfio-user backend descriptors in contrib/vfio-user/ validate against the schema beside
 * them, and there is exactly one per device type of the registry.
 */
import assert from "node:assert/strict";
import { DEVICE_TYPES } from "../../devices/mod.ts";
import { type Schema, validate } from "../../tools/json_schema.ts";
import { REPO_ROOT } from "./conventions_helpers.ts";

const DIR = `${REPO_ROOT}contrib/vfio-user`;
const schema = JSON.parse(Deno.readTextFileSync(`${DIR}/vfio-user.schema.json`)) as Schema;

function descriptors(): { name: string; doc: Record<string, unknown> }[] {
  return [...Deno.readDirSync(DIR)]
    .filter((e) => e.isFile && /^\d\d-.*\.json$/.test(e.name))
    .map((e) => ({ name: e.name, doc: JSON.parse(Deno.readTextFileSync(`${DIR}/${e.name}`)) }));
}

Deno.test("conventions: every descriptor validates against vfio-user.schema.json", () => {
  const all = descriptors();
  assert.ok(all.length > 0, "no descriptors");
  for (const { name, doc } of all) assert.deepEqual(validate(schema, doc), [], name);
});

Deno.test("conventions: the schema catches a broken descriptor", () => {
  const bad = { description: "x", type: "disk", binary: "vfud", extra: 1 };
  assert.equal(validate(schema, bad).length, 3);
});

Deno.test("conventions: one descriptor per device type, named 50-vfud-TYPE.json", () => {
  const byDevice = new Map(descriptors().map(({ name, doc }) => [doc.device, name]));
  for (const type of DEVICE_TYPES.keys()) {
    assert.equal(
      byDevice.get(type),
      `50-vfud-${type}.json`,
      `device type ${type} needs contrib/vfio-user/50-vfud-${type}.json`,
    );
  }
  for (const device of byDevice.keys()) {
    assert.ok(DEVICE_TYPES.has(device as string), `descriptor for unknown device ${device}`);
  }
});
