/**
 * Run inside a private network namespace (`unshare --net`) by migration_tap_test.ts: live
 * migration of an e1000 on a tap interface. Two vfud processes each create a tap (vtapA, vtapB),
 * both enslaved to a bridge with 10.9.0.1/24; the in-repo client plays the VMM and the guest
 * driver (10.9.0.2); the kernel's UDP sockets are the far end. UDP datagrams go both ways before
 * the migration, during pre-copy (with a burst waiting in the source NIC and transmits pending
 * at the stop), and after it through the destination's tap. Prints one JSON line with what each
 * side received; the test judges it.
 *
 * @module
 */
import dgram from "node:dgram";
import { Buffer } from "node:buffer";
import { DeviceMigration, e1000, MemfdRam, migrate, pollUntil, sleep } from "../../client/mod.ts";
import { connect, startVfud } from "./helpers.ts";
import { nicUp } from "./kits/e1000.ts";
import { ip } from "../netns.ts";

const GUEST_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const BRIDGE_MAC = [0x02, 0x00, 0x00, 0x00, 0x09, 0x01];
const GUEST_IP = [10, 9, 0, 2];
const HOST_IP = [10, 9, 0, 1];
const SINK_PORT = 9000; // kernel side, receives the guest's datagrams
const SOURCE_PORT = 9001; // kernel side, sends to the guest
const GUEST_PORT = 9002;

function checksum(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** An IPv4/UDP frame from the guest to the host's sink (UDP checksum 0: none). */
function udpFrame(dstMac: number[], text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const f = new Uint8Array(Math.max(60, 42 + payload.length));
  f.set(dstMac, 0);
  f.set(GUEST_MAC, 6);
  f.set([0x08, 0x00], 12);
  const total = 28 + payload.length;
  f.set([0x45, 0, total >> 8, total & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0], 14);
  f.set(GUEST_IP, 26);
  f.set(HOST_IP, 30);
  const c = checksum(f, 14, 34);
  f.set([c >> 8, c & 0xff], 24);
  f.set([GUEST_PORT >> 8, GUEST_PORT & 0xff, SINK_PORT >> 8, SINK_PORT & 0xff], 34);
  f.set([(8 + payload.length) >> 8, (8 + payload.length) & 0xff, 0, 0], 38);
  f.set(payload, 42);
  return f;
}

/** The text of a UDP datagram for the guest's port, or undefined. */
function guestDatagram(f: Uint8Array): string | undefined {
  if (f.length < 42 || f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 17) return undefined;
  const udp = 14 + (f[14] & 0xf) * 4;
  if (((f[udp + 2] << 8) | f[udp + 3]) !== GUEST_PORT) return undefined;
  const len = ((f[udp + 4] << 8) | f[udp + 5]) - 8;
  return new TextDecoder().decode(f.subarray(udp + 8, udp + 8 + len));
}

async function main(): Promise<number> {
  // A fixed address: a bridge otherwise takes its lowest port's, which changes with the ports.
  await ip("link", "add", "br0", "address", "02:00:00:00:09:01", "type", "bridge");
  await ip("addr", "add", "10.9.0.1/24", "dev", "br0");
  await ip("link", "set", "br0", "up");
  await ip(
    "neigh",
    "add",
    "10.9.0.2",
    "lladdr",
    "52:54:00:12:34:56",
    "dev",
    "br0",
    "nud",
    "permanent",
  );
  const device = (tap: string) => `e1000,netdev=tap,ifname=${tap},mac=52:54:00:12:34:56`;
  await using a = await startVfud({ device: device("vtapA") });
  await ip("link", "set", "vtapA", "master", "br0", "up");
  await using b = await startVfud({ device: device("vtapB") });
  await ip("link", "set", "vtapB", "master", "br0", "up");

  const sink = dgram.createSocket("udp4");
  const fromGuest: number[] = [];
  sink.on("message", (m) => fromGuest.push(Number(m.toString().split(" ")[1])));
  await new Promise<void>((r) => sink.bind(SINK_PORT, "10.9.0.1", () => r()));
  const source = dgram.createSocket("udp4");
  await new Promise<void>((r) => source.bind(SOURCE_PORT, "10.9.0.1", () => r()));
  let p = 0;
  const toGuest = (n: number) => {
    const seqs = Array.from({ length: n }, () => p++);
    for (const s of seqs) source.send(Buffer.from(`p ${s}`), GUEST_PORT, "10.9.0.2");
    return seqs;
  };

  using ram = new MemfdRam(8 << 20);
  const result = {
    sent: 0,
    fromGuest,
    toGuest: 0,
    received: [] as number[],
    burst: [] as number[],
    blackout: [] as number[],
    pendingAtStop: 0,
    states: [] as number[],
  };
  try {
    await using clientA = await connect(a);
    await clientA.mapRam(ram);
    const nic = await nicUp(clientA, ram, 16, 64);
    let g = 0;
    const guestSend = (n: number) =>
      nic.send(Array.from({ length: n }, () => udpFrame(BRIDGE_MAC, `g ${g++}`)));
    const take = async () => {
      for (const f of await nic.receive()) {
        const t = guestDatagram(f);
        if (t?.startsWith("p ")) result.received.push(Number(t.slice(2)));
      }
    };
    const until = (cond: () => boolean, what: string) =>
      pollUntil(async () => (await take(), cond() ? true : undefined), what, 15_000);

    // Before: both ways through vtapA.
    await guestSend(10);
    await pollUntil(() => (fromGuest.length >= 10 ? true : undefined), "guest datagrams", 15_000);
    toGuest(10);
    await until(() => result.received.length >= 10, "datagrams to the guest");

    await using clientB = await connect(b);
    await clientB.mapRam(ram);
    const src = new DeviceMigration(clientA);
    const dst = new DeviceMigration(clientB);
    await migrate(src, dst, {
      preCopyRounds: 2,
      duringPreCopy: async (round) => {
        if (round === 0) {
          await guestSend(8);
          toGuest(8);
          await until(() => result.received.length >= 18, "datagrams during pre-copy");
          return;
        }
        // A burst waits in the NIC (ring full, driver not returning buffers) and transmits
        // are queued right before the stop.
        nic.rearm = false;
        result.burst = toGuest(24);
        await pollUntil(
          async () => ((await nic.read(e1000.STATS.RNBC)) > 0 ? true : undefined),
          "a frame waiting for descriptors",
          15_000,
        );
        await guestSend(30);
        nic.reclaim();
        result.pendingAtStop = nic.txPending;
      },
      sourceStopped: async () => {
        result.blackout = toGuest(5); // to the stopped source's tap: lost with it
        await sleep(200);
      },
      beforeResume: () => nic.moveTo(clientB),
    });
    result.states = [await src.state(), await dst.state()];
    // After: through vtapB. The guest speaks first (the bridge learns where it is now).
    nic.rearm = true;
    await until(() => {
      void nic.giveBack();
      return result.received.length > 18;
    }, "the frame that waited in the source NIC");
    await guestSend(10);
    await pollUntil(
      () => (fromGuest.length >= g ? true : undefined),
      "all guest datagrams",
      15_000,
    );
    toGuest(10);
    await until(() => result.received.includes(p - 1), "datagrams through the destination");
    await sleep(200);
    await take();
    result.sent = g;
    result.toGuest = p;
  } finally {
    sink.close();
    source.close();
  }
  console.log(JSON.stringify(result));
  return 0;
}

if (import.meta.main) Deno.exit(await main());
