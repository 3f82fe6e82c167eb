/**
 * The example device (devices/doorbell/) on a real vfud process, driven by the client library as
 * a VMM would: PCI identity and BAR through the protocol, jobs logged to guest RAM with MSI-X or
 * INTx interrupts, DEVICE_RESET; and it is served only where the environment asks for test
 * devices. (The shared lifecycle suite runs it too: device_lifecycle_test.ts.)
 */
import assert from "node:assert/strict";
import {
  GuestArena,
  type InterruptMode,
  MemfdRam,
  pci,
  PciConfig,
  RegionIndex,
} from "../../client/mod.ts";
import {
  BAR_SIZE,
  DOORBELL_ID,
  DOORBELL_PCI,
  DoorbellReg,
  DoorbellStatus,
} from "../../devices/doorbell/device.ts";
import { connect, startVfud } from "./helpers.ts";
import { runVfud } from "./conventions_helpers.ts";
import { DoorbellDriver } from "./kits/doorbell.ts";

/**
 * vfud serving the doorbell, a client with 1 MiB of guest RAM mapped at 0, and the driver with
 * interrupts of `mode` and a log of `logSize` entries.
 */
async function doorbell(mode: InterruptMode, logSize?: number) {
  const vfud = await startVfud({ device: "doorbell" });
  const client = await connect(vfud);
  const ram = new MemfdRam(1 << 20);
  await client.mapRam(ram);
  const arena = new GuestArena(0n, ram.bytes);
  const drv = await DoorbellDriver.create(client, arena, mode, logSize);
  return {
    client,
    drv,
    async [Symbol.asyncDispose]() {
      drv.close();
      assert.deepEqual(client.violations, []);
      await client.close();
      ram.close();
      await vfud[Symbol.asyncDispose]();
    },
  };
}

Deno.test("doorbell: a test-only device type, refused unless VFUD_TEST_DEVICES=1", async () => {
  const refused = await runVfud(["--socket-path=/nonexistent/x.sock", "--device=doorbell"], {
    VFUD_TEST_DEVICES: "0",
  });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /unknown device type "doorbell"/);
  const caps = await runVfud(["--print-capabilities"], { VFUD_TEST_DEVICES: "0" });
  assert.equal(caps.code, 0);
  assert.ok(!caps.stdout.includes("doorbell"), "not offered to users");
  const test = await runVfud(["--print-capabilities"], { VFUD_TEST_DEVICES: "1" });
  assert.ok(test.stdout.includes('"doorbell"'), "offered to tests");
});

Deno.test("doorbell: identity, one BAR with MSI-X, jobs logged with MSI-X interrupts", async () => {
  await using d = await doorbell("msix", 8);
  const cfg = new PciConfig(d.client);
  assert.equal(await cfg.read16(pci.ConfigReg.VENDOR_ID), DOORBELL_PCI.VENDOR);
  assert.equal(await cfg.read16(pci.ConfigReg.DEVICE_ID), DOORBELL_PCI.DEVICE);
  const msix = (await cfg.capabilities()).find((c) => c.id === pci.CapId.MSIX);
  assert.ok(msix, "an MSI-X capability");
  assert.equal((await cfg.read16(msix.offset + pci.Msix.CONTROL)) & pci.Msix.CONTROL_TABLE_SIZE, 0);
  assert.equal((await d.client.getRegionInfo(RegionIndex.BAR0)).size, BigInt(BAR_SIZE));
  assert.equal((await d.client.getRegionInfo(RegionIndex.BAR1)).size, 0n);
  const drv = d.drv;
  assert.equal(await drv.read(DoorbellReg.ID), DOORBELL_ID);
  await drv.ring([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]); // more than the log holds
  assert.ok((await drv.waitCount(10)) >= 1, "MSI-X vector 0 fired");
  assert.deepEqual([8, 9].map((s) => drv.entry(s)), [[18, 8], [19, 9]], "round the log");
  assert.deepEqual(drv.entry(7), [17, 7]);
  assert.equal(await drv.read(DoorbellReg.STATUS), DoorbellStatus.DONE);
});

Deno.test("doorbell: INTx interrupts, acknowledged by STATUS and the unmask, fire again", async () => {
  await using d = await doorbell("intx");
  for (let round = 1; round <= 3; round++) {
    await d.drv.ring([round]);
    assert.equal(await d.drv.waitCount(round), 1, `round ${round}: one INTx`);
    assert.deepEqual(d.drv.entry(round - 1), [round, round - 1]);
    assert.equal(await d.drv.read(DoorbellReg.STATUS), 0, "acknowledged");
  }
});

Deno.test("doorbell: DEVICE_RESET returns it to power-on state", async () => {
  await using d = await doorbell("msix");
  await d.drv.write(DoorbellReg.SCRATCH, 0x1234);
  await d.drv.ring([1, 2]);
  await d.drv.waitCount(2);
  await d.client.reset();
  for (const reg of [DoorbellReg.COUNT, DoorbellReg.SCRATCH, DoorbellReg.CONTROL]) {
    assert.equal(await d.drv.read(reg), 0, `register 0x${reg.toString(16)}`);
  }
  assert.equal(await d.drv.read(DoorbellReg.ID), DOORBELL_ID);
});
