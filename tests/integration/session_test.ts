/**
 * A session the way QEMU 11.1's vfio-user-pci runs it at realize time (order and message shapes
 * from docs/protocol-notes.md and the recorded boot), against a real vfud process.
 */
import assert from "node:assert/strict";
import { IrqIndex, IrqSetFlags } from "../../protocol/irq.ts";
import {
  ArrayRam,
  DmaMapFlags,
  EventFd,
  GuestArena,
  MemfdRam,
  PciConfig,
  QEMU_VERSION_MESSAGE_SIZE,
  randomBytes,
  VirtioBlkDriver,
  walkCapabilities,
} from "../../client/mod.ts";
import { CapId, ConfigReg } from "../../spec/pci.ts";
import { CapType } from "../../spec/virtio.ts";
import { BlkStatus, ReqType } from "../../spec/virtio_blk.ts";
import { Command } from "../../protocol/header.ts";
import { connect, readImage, startVfud } from "./helpers.ts";

const { DATA_NONE, DATA_EVENTFD, ACTION_TRIGGER } = IrqSetFlags;
const { INTX } = IrqIndex;

const MiB = 1 << 20;

Deno.test("session: QEMU-like realize sequence", async () => {
  await using vfud = await startVfud();
  await using client = await connect(vfud, { version: false });
  const ram = new MemfdRam(16 * MiB);
  const rom = new ArrayRam(0x40000);
  try {
    // VERSION exactly as QEMU sends it; the reply must fit QEMU's buffer (the request size).
    const sent = client.nextMessage({ filter: (m) => m.header.cmd === Command.VERSION });
    const v = await client.version();
    const reply = await sent;
    assert.ok(
      reply.header.size <= QEMU_VERSION_MESSAGE_SIZE,
      `VERSION reply ${reply.header.size} > 214`,
    );
    assert.equal(v.major, 0);
    assert.equal(v.minor, 0);
    assert.ok(v.json && typeof v.json === "object", "JSON part parses");
    const caps = (v.json as { capabilities?: Record<string, unknown> }).capabilities ?? {};
    if (caps.max_msg_fds !== undefined) assert.ok(Number(caps.max_msg_fds) <= 16);
    if (caps.max_data_xfer_size !== undefined) assert.ok(Number(caps.max_data_xfer_size) <= MiB);

    // DMA_MAP x2 before anything else: RAM at 0 with its fd, the BIOS ROM without, read-only.
    await client.mapRam(ram);
    await client.dmaMap({
      iova: 0xfffc0000n,
      size: 0x40000n,
      flags: DmaMapFlags.READ,
      backing: rom.bytes,
    });

    const info = await client.getInfo();
    assert.equal(info.flags & 3, 3, "RESET | PCI");
    assert.ok(info.numRegions >= 9, `num_regions ${info.numRegions}`);
    assert.ok(info.numIrqs >= 5, `num_irqs ${info.numIrqs}`);

    // GET_REGION_INFO 0-8 with argsz 32 (virtio-blk: MSI-X in BAR 1, virtio structures in BAR 4).
    const expected = [0, 0x1000, 0, 0, 0x4000, 0, 0, 256, 0];
    for (let i = 0; i <= 8; i++) {
      const r = await client.getRegionInfo(i);
      assert.equal(r.index, i);
      assert.equal(r.size, BigInt(expected[i]), `region ${i} size`);
      assert.equal(r.flags & 3, expected[i] ? 3 : 0, `region ${i} flags`);
      assert.equal(r.flags & 4, 0, `region ${i}: no MMAP without an fd`);
    }

    const err = await client.getIrqInfo(3);
    assert.equal(err.index, 3);
    const msix = await client.getIrqInfo(2);
    assert.equal(msix.count, 2, "one vector per queue + config");
    assert.equal(msix.flags & 1, 1, "EVENTFD");
    const intx = await client.getIrqInfo(0);
    assert.equal(intx.count, 1);
    assert.equal(intx.flags & 7, 7, "EVENTFD | MASKABLE | AUTOMASKED");

    // 256-byte config read.
    const pci = new PciConfig(client);
    const cfg = await pci.image();
    assert.equal(cfg.length, 256);
    assert.equal(cfg[0] | (cfg[1] << 8), 0x1af4, "vendor");
    assert.equal(cfg[2] | (cfg[3] << 8), 0x1042, "device: modern virtio-blk");
    assert.equal(
      cfg[ConfigReg.SUBSYSTEM_VENDOR_ID] | (cfg[ConfigReg.SUBSYSTEM_VENDOR_ID + 1] << 8),
      0x1af4,
    );
    assert.equal(cfg[ConfigReg.INTERRUPT_PIN], 1);
    const caps2 = walkCapabilities(cfg);
    const types = caps2.filter((c) => c.id === CapId.VENDOR).map((c) => cfg[c.offset + 3])
      .sort();
    assert.deepEqual(
      types,
      [CapType.COMMON, CapType.NOTIFY, CapType.ISR, CapType.DEVICE].sort(),
    );
    assert.ok(caps2.some((c) => c.id === CapId.MSIX));
    for (const c of caps2.filter((c) => c.id === CapId.VENDOR)) {
      assert.equal(cfg[c.offset + 4], 4, "virtio structures in BAR 4");
    }

    // A larger argsz than needed: the reply is still the 32-byte struct (no capabilities).
    const big = await client.getRegionInfo(4, { argsz: 128 });
    assert.equal(big.argsz, 32);
    assert.equal(big.size, 0x4000n);

    // REGION_WRITE_MULTI (offered through write_multiple): two config writes in one message.
    const n = await client.writeMulti([
      { region: 7, offset: 0x3cn, data: Uint8Array.of(0x0b) },
      { region: 7, offset: BigInt(ConfigReg.BAR0 + 16), data: Uint8Array.of(0, 0x40, 0xbf, 0xfe) },
    ]);
    assert.equal(n, 2);
    assert.equal(await pci.read8(0x3c), 0x0b, "interrupt line");
    assert.equal(await pci.read32(ConfigReg.BAR0 + 16), 0xfebf_4000, "BAR4 address");

    // ROM BAR sizing at 0x30 reads 0: no expansion ROM.
    assert.equal(await pci.read32(ConfigReg.ROM_ADDRESS), 0);
    await pci.write32(ConfigReg.ROM_ADDRESS, 0xffff_f800);
    assert.equal(await pci.read32(ConfigReg.ROM_ADDRESS), 0);

    // BAR sizing through config writes.
    const sizes = [];
    for (let bar = 0; bar < 6; bar++) sizes.push(await pci.sizeBar(ConfigReg.BAR0 + 4 * bar));
    assert.deepEqual(sizes, [0, 0xffff_f000, 0, 0, 0xffff_c000, 0]);
    await pci.write32(ConfigReg.BAR0 + 4, 0xfebf_1000);
    assert.equal(await pci.read32(ConfigReg.BAR0 + 4), 0xfebf_1000);

    // INTx with one eventfd, then disabled (DATA_NONE, count 0), RESET, INTx again.
    const ev = new EventFd();
    try {
      const assign = { index: INTX, flags: DATA_EVENTFD | ACTION_TRIGGER, start: 0, count: 1 };
      await client.setIrqs({ ...assign, fds: [ev.fd] });
      await client.setIrqs({ index: INTX, flags: DATA_NONE | ACTION_TRIGGER, start: 0, count: 0 });
      assert.equal(await client.reset(), 16, "RESET reply is exactly the header");
      await client.setIrqs({ ...assign, fds: [ev.fd] });
      assert.equal(ev.take(), 0n, "nothing raised INTx");
    } finally {
      ev.close();
    }
    // After reset the BARs are back at zero; QEMU zeroes them through config as well.
    assert.equal(await pci.read32(ConfigReg.BAR0 + 4), 0);
    for (let bar = 0; bar < 6; bar++) await pci.write32(ConfigReg.BAR0 + 4 * bar, 0);

    // The firmware's remapping of 0xc0000-0xfffff: the RAM map is split, fd offsets included.
    await client.dmaUnmap({ iova: 0n, size: BigInt(ram.size) });
    await client.dmaMap({ iova: 0n, size: 0xc0000n, fd: ram.fd, backing: ram.bytes });
    await client.dmaMap({
      iova: 0xc0000n,
      size: 0x20000n,
      flags: DmaMapFlags.READ,
      backing: ram.bytes.subarray(0xc0000),
    });
    await client.dmaMap({
      iova: 0xe0000n,
      size: 0x20000n,
      flags: DmaMapFlags.READ,
      backing: ram.bytes.subarray(0xe0000),
    });
    const high = BigInt(ram.size - 0x100000);
    await client.dmaMap({
      iova: 0x100000n,
      size: high,
      offset: 0x100000n,
      fd: ram.fd,
      backing: ram.bytes.subarray(0x100000),
    });

    // The device works on top of that: rings in low RAM, data in the map with an fd offset.
    const driver = await VirtioBlkDriver.create(client, {
      arena: new GuestArena(0n, ram.bytes.subarray(0, 0xc0000)),
      dataArena: new GuestArena(0x100000n, ram.bytes.subarray(0x100000)),
    });
    try {
      const data = randomBytes(8192);
      await driver.write(16n, data);
      assert.deepEqual(await driver.read(16n, 16), data);
      assert.deepEqual(await readImage(vfud.image, 16 * 512, 8192), data);
      const c = await driver.submit({ type: ReqType.FLUSH });
      assert.equal(c.status, BlkStatus.OK);
    } finally {
      driver.close();
    }
    assert.equal(
      client.dmaStats.reads + client.dmaStats.writes,
      0,
      "fd-backed RAM: no DMA messages",
    );
    assert.deepEqual(client.violations, []);
  } finally {
    await client.close();
    ram.close();
  }
});
