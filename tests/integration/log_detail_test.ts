/**
 * What --log-level=debug and trace add for a virtio-blk disk: the client (pid, negotiated limits),
 * its DMA mappings and interrupts, the driver's status and features, each virtqueue as it is
 * enabled, one line per command and one per block request; and that info shows none of it.
 */
import assert from "node:assert/strict";
import { randomBytes } from "../../client/mod.ts";
import { BlkStatus, ReqType } from "../../spec/virtio_blk.ts";
import { openBlkSession, startVfud } from "./helpers.ts";

async function oneWriteAndRead(logLevel: "info" | "debug" | "trace"): Promise<string> {
  await using v = await startVfud({ logLevel, serial: "logs" });
  {
    await using s = await openBlkSession(v, { ram: "memfd" });
    const data = randomBytes(4096);
    assert.equal(
      (await s.driver.submit({ type: ReqType.OUT, sector: 8n, data })).status,
      BlkStatus.OK,
    );
    const c = await s.driver.submit({ type: ReqType.IN, sector: 8n, readLength: 4096 });
    assert.equal(c.status, BlkStatus.OK);
  }
  await v.stop();
  return v.log();
}

Deno.test("log detail: debug and trace show the session and every request", async () => {
  const info = await oneWriteAndRead("info");
  assert.match(info, /client connected \(session 1\): pid \d+ \(deno\), uid \d+/);
  assert.match(info, /negotiated vfio-user \d+\.\d+: max_data_xfer_size \d+/);
  assert.match(info, /client disconnected after \d+ commands/);
  assert.doesNotMatch(info, /\[DBG\]|\[TRC\]/);

  const debug = await oneWriteAndRead("debug");
  for (
    const re of [
      /\[DBG\] vfud·session-1: DMA map 0x[0-9a-f]+\+0x[0-9a-f]+ rw, mmap of the client's fd/,
      /\[DBG\] vfud·session-1: set IRQs MSIX \d+\.\.\d+: ACTION_TRIGGER with \d+ eventfd/,
      /\[DBG\] vfud·device·virtio-blk: device status ACKNOWLEDGE\|DRIVER\|.*DRIVER_OK/,
      /\[DBG\] vfud·device·virtio-blk: features negotiated: 0x[0-9a-f]+ \(offered 0x[0-9a-f]+\)/,
      /\[DBG\] vfud·device·virtio-blk: queue 0 enabled: size \d+, desc 0x[0-9a-f]+, avail 0x[0-9a-f]+, used 0x[0-9a-f]+, MSI-X vector \d+/,
    ]
  ) assert.match(debug, re);
  assert.doesNotMatch(debug, /\[TRC\]/);

  const trace = await oneWriteAndRead("trace");
  assert.match(trace, /\[TRC\] vfud·session-1: REGION_WRITE id \d+ \(\d+ bytes\): ok/);
  assert.match(trace, /\[TRC\] vfud·device·virtio-blk: request \d+: OUT sector 8, 4096 bytes: OK/);
  assert.match(trace, /\[TRC\] vfud·device·virtio-blk: request \d+: IN sector 8, 4096 bytes: OK/);
});
