/** --trace-protocol: one JSON line per message, both directions, no bulk data. */
import assert from "node:assert/strict";
import { Errno, VfioUserClient } from "../../client/mod.ts";
import { scratch, startVfud, waitForSocket } from "./conventions_helpers.ts";

interface Line {
  ts: string;
  dir: "recv" | "send";
  conn: number;
  id: number;
  cmd: string;
  type: string;
  flags: number;
  size: number;
  fds: number;
  fields?: Record<string, unknown>;
  errno?: number;
}

async function session(path: string): Promise<void> {
  await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
  await c.version();
  await c.getInfo();
  await c.getRegionInfo(7);
  await c.regionRead(7, 0, 64);
  await c.getIrqInfo(99).catch(() => {}); // an error reply
}

Deno.test("conventions: --trace-protocol=FILE writes every message as a JSON line", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  const trace = `${s.dir}/trace.jsonl`;
  await using v = startVfud([`--socket-path=${path}`, s.device, `--trace-protocol=${trace}`]);
  await waitForSocket(v, path);
  await session(path);
  assert.equal((await v.signal("SIGTERM")).code, 0, v.output());

  assert.equal(Deno.statSync(trace).mode! & 0o777, 0o600);
  const lines: Line[] = Deno.readTextFileSync(trace).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 10, JSON.stringify(lines, null, 1));
  for (const l of lines) {
    assert.ok(!Number.isNaN(Date.parse(l.ts)));
    assert.ok(["recv", "send"].includes(l.dir));
    for (const k of ["conn", "id", "flags", "size", "fds"] as const) {
      assert.equal(typeof l[k], "number", k);
    }
  }
  assert.deepEqual(
    lines.map((l) => `${l.dir} ${l.cmd} ${l.type}`),
    [
      "recv VERSION command",
      "send VERSION reply",
      "recv DEVICE_GET_INFO command",
      "send DEVICE_GET_INFO reply",
      "recv DEVICE_GET_REGION_INFO command",
      "send DEVICE_GET_REGION_INFO reply",
      "recv REGION_READ command",
      "send REGION_READ reply",
      "recv DEVICE_GET_IRQ_INFO command",
      "send DEVICE_GET_IRQ_INFO reply",
    ],
  );
  assert.equal(lines[2].fields?.argsz, 16);
  assert.deepEqual(lines[7].fields?.data, { bytes: 64 }); // no bulk data
  assert.equal(lines[9].errno, Errno.EINVAL);
});

Deno.test("conventions: --trace-protocol=- writes the JSON lines to stderr", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, s.device, "--trace-protocol=-"]);
  await waitForSocket(v, path);
  await session(path);
  assert.equal((await v.signal("SIGTERM")).code, 0);
  const json = v.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  assert.equal(json.length, 10);
  assert.equal(json[0].cmd, "VERSION");
});
