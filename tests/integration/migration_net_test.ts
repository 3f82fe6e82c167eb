/**
 * Live migration of an e1000 on a `-netdev stream` cable between two vfud processes, the in-repo
 * client playing the VMM and a test hub playing the network: frames both ways before, during
 * (pre-copy, with transmit descriptors pending at the stop and received frames waiting in the
 * NIC) and after; the driver's rings continue on the destination and no frame is duplicated.
 */
import assert from "node:assert/strict";
import {
  DeviceMigration,
  DeviceState,
  e1000,
  MemfdRam,
  migrate,
  pollUntil,
  sleep,
} from "../../client/mod.ts";
import { connect, startVfud, tempDir } from "./helpers.ts";
import { nicUp } from "./kits/e1000.ts";
import { GUEST_MAC, PEER_MAC, seqRange, StreamHub, testFrame, testSeqs } from "./stream_hub.ts";

Deno.test("migration: e1000 on a stream cable moves to a second vfud, traffic before, during and after", async () => {
  await using dir = await tempDir();
  await using hub = new StreamHub(`${dir.path}/hub.sock`);
  const device = `e1000,netdev=stream,path=${hub.path},server=off,mac=52:54:00:12:34:56`;
  await using a = await startVfud({ device });
  const portA = await hub.port(0);
  await using b = await startVfud({ device });
  const portB = await hub.port(1);
  using ram = new MemfdRam(8 << 20);
  await using clientA = await connect(a);
  await clientA.mapRam(ram);
  const nic = await nicUp(clientA, ram, 16, 64);
  let g = 0; // next guest -> peer sequence number
  let p = 0; // next peer -> guest sequence number
  const received: number[] = []; // peer -> guest, as the driver took them
  const guestSend = (n: number) =>
    nic.send(
      seqRange(g, g += n).map((s) => testFrame(PEER_MAC, GUEST_MAC, "g", s, 60 + s % 200)),
    );
  const peerSend = (port: typeof portA, n: number) =>
    port.send(
      seqRange(p, p += n).map((s) => testFrame(GUEST_MAC, PEER_MAC, "p", s, 60 + s % 300)),
    );
  const take = async () => received.push(...testSeqs(await nic.receive(), "p"));
  const gotAll = (port: typeof portA, upTo: number) =>
    pollUntil(
      () => (testSeqs(port.frames, "g").length >= upTo ? true : undefined),
      `${upTo} frames`,
    );

  // Before: both directions on A.
  await guestSend(10);
  await peerSend(portA, 10);
  await gotAll(portA, 10);
  await pollUntil(async () => (await take(), received.length >= 10 ? true : undefined), "rx");

  await using clientB = await connect(b);
  await clientB.mapRam(ram);
  const src = new DeviceMigration(clientA);
  const dst = new DeviceMigration(clientB);
  let burst: number[] = [];
  let blackout: number[] = [];
  let pendingAtStop = 0;
  let gAtStop = 0;
  /**
   * Sends full-size frames until the NIC cannot have taken them all: more bytes than the
   * socket's send buffer and the backend's queue hold (its congestion mark) plus a ring, with
   * the ring full (or stuck full for a second, if the buffers filled earlier).
   */
  const wmem = Number(Deno.readTextFileSync("/proc/sys/net/core/wmem_default").trim());
  const bound = wmem + 256 * 1024 + 2 * nic.txCount * 1514;
  let sentBytes = 0;
  let stuckSince = 0;
  const fillTxRing = () =>
    pollUntil(async () => {
      nic.reclaim();
      const room = nic.txCount - 1 - nic.txPending;
      if (room === 0) {
        stuckSince ||= Date.now();
        if (sentBytes >= bound || Date.now() - stuckSince >= 1000) return true;
      } else {
        stuckSince = 0;
        sentBytes += room * 1514;
        await nic.send(
          seqRange(g, g += room).map((s) => testFrame(PEER_MAC, GUEST_MAC, "g", s, 1514)),
        );
      }
      await sleep(20);
      return undefined;
    }, "the transmit ring to stay full");
  await migrate(src, dst, {
    preCopyRounds: 2,
    duringPreCopy: async (round) => {
      if (round === 0) {
        // Traffic while the state is copied.
        await guestSend(8);
        await peerSend(portA, 8);
        await gotAll(portA, 18);
        await pollUntil(
          async () => (await take(), received.length >= 18 ? true : undefined),
          "rx",
        );
        return;
      }
      // Last round. The peer stops reading: A's backend congests, its transmit unit holds a
      // built frame and stops fetching, and the ring fills: transmits are pending at the stop.
      portA.pauseReading();
      await fillTxRing();
      // The driver stops returning buffers, the receive ring fills and a burst waits in the
      // NIC (its packet buffer, and what its backend had read).
      nic.rearm = false;
      const first = p;
      await peerSend(portA, 24);
      burst = seqRange(first, p);
      await pollUntil(
        async () => ((await nic.read(e1000.STATS.RNBC)) > 0 ? true : undefined),
        "frames waiting for descriptors",
      );
      nic.reclaim();
      pendingAtStop = nic.txPending;
      gAtStop = g;
    },
    sourceStopped: async () => {
      assert.equal(await src.state(), DeviceState.STOP_COPY);
      // While A is stopped: frames sent to it stay in its socket (lost with it, like frames
      // on a wire to a host that went away); A must not touch guest memory.
      const first = p;
      await peerSend(portA, 5);
      blackout = seqRange(first, p);
      const snapshot = ram.bytes.slice();
      await sleep(300);
      assert.ok(
        ram.bytes.every((x, i) => x === snapshot[i]),
        "the stopped source touched guest memory",
      );
    },
    beforeResume: () => nic.moveTo(clientB),
  });
  assert.equal(await src.state(), DeviceState.STOP);
  assert.equal(await dst.state(), DeviceState.RUNNING);

  // After: the peer reads A's connection again (frames A's backend had taken arrive); the
  // driver takes what filled its ring and gives the buffers back; the NIC on B delivers the
  // frames that waited in A's NIC, and sends A's built frame and the pending descriptors.
  portA.resumeReading();
  nic.rearm = true;
  await pollUntil(async () => {
    await take();
    await nic.giveBack();
    return burst.every((s) => received.includes(s)) ? true : undefined;
  }, "the burst that waited in the source NIC");
  await nic.waitTx();
  await guestSend(10);
  await peerSend(portB, 10);
  await pollUntil(
    () => testSeqs([...portA.frames, ...portB.frames], "g").length >= g ? true : undefined,
    "every transmitted frame at the peer",
  );
  await pollUntil(
    async () => (await take(), received.includes(p - 1) ? true : undefined),
    "rx on B",
  );

  // Guest -> peer: every frame exactly once, in order, across the two connections.
  const sentByA = testSeqs(portA.frames, "g");
  const sentByB = testSeqs(portB.frames, "g");
  assert.deepEqual(
    [...sentByA, ...sentByB],
    seqRange(0, g),
    "each transmit descriptor sent once",
  );
  assert.ok(pendingAtStop > 0, "the stop came with transmit descriptors pending");
  assert.ok(sentByB[0] < gAtStop, "B sent what was pending in A");
  // Peer -> guest: in order, never twice; only frames sent to the stopped source are missing.
  assert.deepEqual(received, seqRange(0, p).filter((s) => !blackout.includes(s)));
  assert.deepEqual(clientA.violations, []);
  assert.deepEqual(clientB.violations, []);
});
