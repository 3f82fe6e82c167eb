/** `vfud probe` against a running vfud, as text and as JSON. */
import assert from "node:assert/strict";
import { VfioUserClient } from "../../client/mod.ts";
import { runVfud, scratch, startVfud, waitFor, waitForSocket } from "./conventions_helpers.ts";

Deno.test("conventions: vfud probe prints version, regions, IRQs and config space", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, s.device]);
  await waitForSocket(v, path);

  const text = await runVfud(["probe", path]);
  assert.equal(text.code, 0, text.stderr);
  for (
    const want of [
      /protocol version 0\.0/,
      /max_data_xfer_size: \d+/,
      /device: flags RESET\|PCI, 9 regions, 5 IRQ indexes/,
      /7 CONFIG: size 256 \(0x100\) flags READ\|WRITE/,
      /2 MSIX: count \d+ flags EVENTFD/,
      /vendor 0x1af4 .*device 0x1042 virtio block \(modern\)/,
      /class 0x01 0x00 0x00 \(mass storage \/ SCSI\)/,
      /Vendor Specific \(0x09\) virtio=common bar=\d/,
      /virtio=notify .*notifyOffMultiplier=0x/,
      /MSI-X \(0x11\) tableSize=\d+/,
    ]
  ) assert.match(text.stdout, want);

  const json = await runVfud(["probe", "--json", path]);
  assert.equal(json.code, 0, json.stderr);
  const r = JSON.parse(json.stdout);
  assert.equal(r.version.major, 0);
  assert.equal(typeof r.version.capabilities.capabilities.max_data_xfer_size, "number");
  assert.deepEqual(r.device.flags, ["RESET", "PCI"]);
  assert.equal(r.regions.length, 9);
  assert.equal(r.regions[7].size, "0x100");
  assert.equal(r.irqs[2].name, "MSIX");
  assert.equal(r.config.vendorId, 0x1af4);
  assert.equal(r.config.deviceId, 0x1042);
  const virtio = r.config.capabilities.filter((c: { id: number }) => c.id === 0x09)
    .map((c: { details: { virtio: string } }) => c.details.virtio);
  assert.deepEqual(virtio.sort(), ["common", "device", "isr", "notify"]);
  const bars = r.config.bars.filter((b: { kind: string }) => b.kind !== "unused");
  assert.ok(bars.length >= 1);
  assert.ok(
    bars.every((b: { size: string }) => b.size === r.regions[bars[0].index].size || b.size),
  );

  assert.equal((await v.signal("SIGTERM")).code, 0, v.output());
});

Deno.test("conventions: vfud probe fails cleanly", async () => {
  await using s = await scratch();
  const missing = await runVfud(["probe", `${s.dir}/nothing.sock`]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /vfud probe: .*nothing\.sock: .*No such file/);
  const usage = await runVfud(["probe"]);
  assert.equal(usage.code, 2);

  // vfud serves one client at a time: a probe while a VMM is attached is refused.
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([`--socket-path=${path}`, s.device]);
  await waitForSocket(v, path);
  await using c = await VfioUserClient.connect(path, { timeoutMs: 10_000 });
  await c.version();
  const busy = await runVfud(["probe", "--timeout=3000", path]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /another client/);
});

Deno.test("conventions: an image with a comma (QEMU's ,, escape) is served, probe shows its capacity", async () => {
  await using s = await scratch();
  const image = `${s.dir}/disk,one.img`;
  Deno.writeFileSync(image, new Uint8Array(0));
  Deno.truncateSync(image, 3 << 20);
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([
    `--socket-path=${path}`,
    `--device=virtio-blk,file=${s.dir}/disk,,one.img,serial=comma`,
  ]);
  await waitForSocket(v, path);
  await waitFor("the serving line", () => /serving/.test(v.output()) || undefined);
  assert.ok(
    v.output().includes(`(${image}: 3 MiB (3145728 bytes), read-write, serial comma)`),
    v.output(),
  );
  const text = await runVfud(["probe", path]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /virtio-blk: capacity 6144 sectors \(3 MiB\), blkSize 512/);
  assert.match(text.stdout, /, serial "comma"$/m);
  const json = JSON.parse((await runVfud(["probe", "--json", path])).stdout);
  assert.equal(json.deviceInfo.fields.capacityBytes, "0x300000");
  assert.equal(json.deviceInfo.fields.serial, "comma");
  assert.equal((await v.signal("SIGTERM")).code, 0);
});

Deno.test("conventions: images the guest cannot use whole are served with a warning", async () => {
  await using s = await scratch();
  for (
    const [bytes, warning] of [
      [0, /image \S+ is 0 bytes: the guest sees an empty disk \(0 sectors\)/],
      [1000, /image \S+ is 1000 bytes, not a multiple of 512: its last 488 bytes are not served/],
    ] as const
  ) {
    const image = `${s.dir}/odd-${bytes}.img`;
    Deno.writeFileSync(image, new Uint8Array(bytes));
    const path = `${s.dir}/odd-${bytes}.sock`;
    await using v = startVfud([`--socket-path=${path}`, `--device=virtio-blk,file=${image}`]);
    await waitForSocket(v, path);
    await waitFor("the serving line", () => /serving/.test(v.output()) || undefined);
    assert.match(v.output(), /\[WRN\] vfud·device·virtio-blk: /);
    assert.match(v.output(), warning);
    const text = await runVfud(["probe", path]);
    assert.match(text.stdout, new RegExp(`capacity ${Math.floor(bytes / 512)} sectors`));
    assert.equal((await v.signal("SIGTERM")).code, 0);
  }
});

Deno.test("conventions: vfud probe shows an e1000's MAC address", async () => {
  await using s = await scratch();
  const path = `${s.dir}/vfud.sock`;
  await using v = startVfud([
    `--socket-path=${path}`,
    `--device=e1000,netdev=stream,path=${s.dir}/net.sock,mac=02:00:00:12:34:56`,
  ]);
  await waitForSocket(v, path);
  const text = await runVfud(["probe", path]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^e1000: mac 02:00:00:12:34:56, macValid true, linkUp false$/m);
  const json = JSON.parse((await runVfud(["probe", "--json", path])).stdout);
  assert.deepEqual(json.deviceInfo, {
    kind: "e1000",
    fields: { mac: "02:00:00:12:34:56", macValid: true, linkUp: false },
  });
  assert.equal((await v.signal("SIGTERM")).code, 0);
});
