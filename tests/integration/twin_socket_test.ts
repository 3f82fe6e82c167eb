/**
 * twin_socket (spec, "Version"): a client that proposes it gets the other end of a new socket
 * pair with the VERSION reply, and the server's DMA requests travel there. QEMU does not use it,
 * so only the in-repo client exercises it.
 */
import assert from "node:assert/strict";
import { ArrayRam, GuestArena, randomBytes, VirtioBlkDriver } from "../../client/mod.ts";
import { BlkStatus, ReqType } from "../../spec/virtio_blk.ts";
import { decodeVersionReply, encodeVersionPayload } from "../../client/version.ts";
import { Command } from "../../protocol/header.ts";
import { closeFd } from "../../sys/ffi.ts";
import { connect, startVfud } from "./helpers.ts";

const CAPS = JSON.stringify({
  capabilities: { max_msg_fds: 16, max_data_xfer_size: 1048576, twin_socket: { supported: true } },
});

Deno.test("twin_socket: DMA requests go over the socket handed out with VERSION", async () => {
  await using v = await startVfud();
  using ram = new ArrayRam(8 << 20);
  await using client = await connect(v, { version: false });
  const r = await client.request(Command.VERSION, encodeVersionPayload(0, 0, CAPS), {
    keepFds: true,
  });
  const reply = decodeVersionReply(r.payload);
  assert.equal(reply.caps?.twinSocket?.supported, true, "the server accepted twin_socket");
  assert.equal(r.fds.length, 1, "the VERSION reply carries the twin socket");
  assert.equal(reply.caps?.twinSocket?.fdIndex, 0);
  client.attachTwin(r.fds[0]);

  // Message-based guest RAM: every ring and data access is a DMA request to us.
  await client.mapRam(ram);
  const driver = await VirtioBlkDriver.create(client, {
    arena: new GuestArena(0n, ram.bytes),
    interrupts: "msix",
  });
  const data = randomBytes(64 * 1024);
  assert.equal(
    (await driver.submit({ type: ReqType.OUT, sector: 8n, data })).status,
    BlkStatus.OK,
  );
  const back = await driver.submit({ type: ReqType.IN, sector: 8n, readLength: data.length });
  assert.equal(back.status, BlkStatus.OK);
  assert.deepEqual(back.data, data);
  driver.close();

  const served = client.dmaStats.reads + client.dmaStats.writes;
  assert.ok(client.twinRequests > 0, "DMA requests arrived on the twin socket");
  assert.equal(served, client.twinRequests, "none arrived on the main socket");
  assert.deepEqual(client.violations, []);
});

Deno.test("twin_socket is not enabled unless the client proposes it", async () => {
  await using v = await startVfud();
  const client = await connect(v, { version: false });
  try {
    const r = await client.request(Command.VERSION, encodeVersionPayload(0, 0, "{}"), {
      keepFds: true,
    });
    r.fds.forEach(closeFd);
    assert.equal(r.fds.length, 0);
    assert.equal(decodeVersionReply(r.payload).caps?.twinSocket, undefined);
  } finally {
    await client.close();
  }
});
