/**
 * `vfud probe` and a virtio-blk serial: read with one GET_ID, shown in text and JSON, and the
 * device left as it was found (vfud keeps device state across clients).
 */
import assert from "node:assert/strict";
import {
  GuestArena,
  le,
  MemfdRam,
  PciConfig,
  probeVirtioPci,
  VfioUserClient,
  virtio,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { runVfud, scratch, startVfud, waitForSocket } from "./conventions_helpers.ts";

const connect = (path: string) => VfioUserClient.connect(path, { timeoutMs: 10_000 });

/** What a new client sees: config space, and the common configuration as queue 0 shows it. */
async function deviceView(path: string) {
  await using c = await connect(path);
  await c.version();
  const layout = await probeVirtioPci(c);
  const common = await c.regionRead(layout.common.bar, layout.common.offset, 0x38);
  return {
    config: await new PciConfig(c).image(),
    common,
    status: common[virtio.CommonCfg.DEVICE_STATUS],
    queueEnable: le.u16(common, virtio.CommonCfg.QUEUE_ENABLE),
    queueDesc: le.u64(common, virtio.CommonCfg.QUEUE_DESC),
  };
}

Deno.test("conventions: vfud probe shows a virtio-blk serial, empty or not, in text and JSON", async () => {
  await using s = await scratch();
  for (const [option, text] of [[",serial=vd-0042", '"vd-0042"'], ["", '"" (empty)']]) {
    const path = `${s.dir}/serial${option ? "" : "-none"}.sock`;
    await using v = startVfud([`--socket-path=${path}`, s.device + option]);
    await waitForSocket(v, path);
    const out = await runVfud(["probe", path]);
    assert.equal(out.code, 0, out.stderr);
    const line = out.stdout.split("\n").find((l) => l.startsWith("virtio-blk: "));
    assert.ok(line?.endsWith(`, numQueues 1, serial ${text}`), out.stdout);
    const json = await runVfud(["probe", "--json", path]);
    assert.equal(json.code, 0, json.stderr);
    const info = JSON.parse(json.stdout).deviceInfo;
    assert.equal(info.kind, "virtio-blk");
    assert.equal(info.fields.serial, option ? "vd-0042" : "");
    assert.equal(info.unread, undefined);
    assert.equal((await v.signal("SIGTERM")).code, 0, v.output());
  }
});

Deno.test("conventions: vfud probe --registers-only does not read the serial", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, `${s.device},serial=hidden`]);
  await waitForSocket(v, path);
  const text = await runVfud(["probe", "--registers-only", path]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(
    text.stdout,
    /virtio-blk: capacity 2048 sectors .*serial not read \(--registers-only\)/,
  );
  assert.doesNotMatch(text.stdout, /hidden/);
  const json = JSON.parse((await runVfud(["probe", "--json", "--registers-only", path])).stdout);
  assert.equal(json.deviceInfo.fields.serial, undefined);
  assert.deepEqual(json.deviceInfo.unread, { serial: "--registers-only" });
  assert.equal((await v.signal("SIGTERM")).code, 0, v.output());
});

Deno.test("conventions: after vfud probe a new client finds the device reset and drives it", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, `${s.device},serial=after-probe`]);
  await waitForSocket(v, path);
  const before = await deviceView(path);
  assert.equal(before.status, 0);

  const out = await runVfud(["probe", path]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /serial "after-probe"/);

  // Reset (status 0, queue 0 disabled, no ring addresses) and config space as before the probe:
  // COMMAND, MSI-X Control and the interrupt status bit put back.
  const after = await deviceView(path);
  assert.equal(after.status, 0);
  assert.equal(after.queueEnable, 0);
  assert.equal(after.queueDesc, 0n);
  assert.deepEqual(after.common, before.common);
  assert.deepEqual(after.config, before.config);

  // A VMM's driver brings it up and does I/O as on a fresh device.
  using ram = new MemfdRam(1 << 20);
  await using c = await connect(path);
  await c.version();
  await c.mapRam(ram);
  using d = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram.bytes) });
  const data = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
  await d.write(8n, data);
  assert.deepEqual(await d.read(8n, 8), data);
  assert.equal(await d.getId(), "after-probe");
  assert.deepEqual(c.violations, []);
});

Deno.test("conventions: vfud probe leaves a device a driver set up alone", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, `${s.device},serial=driven`]);
  await waitForSocket(v, path);
  {
    // A VMM sets the device up and goes away; vfud keeps the state for its return.
    using ram = new MemfdRam(1 << 20);
    await using c = await connect(path);
    await c.version();
    await c.mapRam(ram);
    using d = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram.bytes) });
    assert.equal(await d.getId(), "driven");
  }
  const before = await deviceView(path);
  assert.ok(before.status & virtio.Status.DRIVER_OK);

  const out = await runVfud(["probe", path]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /serial not read \(a driver has set the device up \(device status 0x/);
  const json = JSON.parse((await runVfud(["probe", "--json", path])).stdout);
  assert.match(json.deviceInfo.unread.serial, /a driver has set the device up/);

  const after = await deviceView(path);
  assert.deepEqual(after.common, before.common);
  assert.deepEqual(after.config, before.config);
  assert.equal(after.queueEnable, 1);
});
