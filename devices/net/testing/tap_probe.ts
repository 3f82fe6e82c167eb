/**
 * Run inside a private network namespace (`unshare --net`) by ../tap_test.ts: creates a tap
 * interface with {@link TapBackend}, gives the kernel side 10.77.0.1/24, and plays the host
 * 10.77.0.2 behind the tap: answers the kernel's ARP request and echoes a UDP datagram back with
 * "pong". Then it stops receiving (backpressure): datagrams the kernel sends meanwhile must stay
 * in the tap's queue, and arrive in order once it receives again. Prints one JSON line with what
 * happened; exit status 0 on success.
 *
 * @module
 */
import dgram from "node:dgram";
import { Buffer } from "node:buffer";
import { PrivateLoop } from "../mod.ts";
import { TapBackend } from "../tap.ts";
import { ip } from "../../../tests/netns.ts";

const IFNAME = "vfudtap0";
const KERNEL_IP = [10, 77, 0, 1];
const PEER_IP = [10, 77, 0, 2];
const PEER_MAC = [0x02, 0, 0, 0, 0, 0x02];

function sum16(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function arpReply(req: Uint8Array): Uint8Array {
  const f = new Uint8Array(42);
  f.set(req.subarray(6, 12), 0);
  f.set(PEER_MAC, 6);
  f.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
  f.set(PEER_MAC, 22);
  f.set(PEER_IP, 28);
  f.set(req.subarray(22, 32), 32); // sender MAC and IP of the request become the target
  return f;
}

function udpReply(req: Uint8Array, payload: Uint8Array): Uint8Array {
  const ihl = (req[14] & 0xf) * 4;
  const udp = 14 + ihl;
  const f = new Uint8Array(14 + 20 + 8 + payload.length);
  f.set(req.subarray(6, 12), 0);
  f.set(PEER_MAC, 6);
  f.set([0x08, 0x00], 12);
  const total = 20 + 8 + payload.length;
  f.set([0x45, 0, total >> 8, total & 0xff, 0, 1, 0x40, 0, 64, 17, 0, 0], 14);
  f.set(PEER_IP, 26);
  f.set(KERNEL_IP, 30);
  const c = sum16(f, 14, 34);
  f.set([c >> 8, c & 0xff], 24);
  f.set([req[udp + 2], req[udp + 3], req[udp], req[udp + 1]], 34); // swap ports
  f.set([(8 + payload.length) >> 8, (8 + payload.length) & 0xff, 0, 0], 38);
  f.set(payload, 42);
  return f;
}

async function main(): Promise<number> {
  const own = new PrivateLoop();
  const tap = TapBackend.open(own.loop, { ifname: IFNAME });
  const seen = { arp: 0, udp: "", ifname: tap.ifname };
  let open = true;
  const late: string[] = [];
  tap.attach({
    linkChanged: () => {},
    canReceive: () => open,
    receive: (f) => {
      const type = (f[12] << 8) | f[13];
      if (type === 0x0806 && f[21] === 1 && f.subarray(38, 42).join() === PEER_IP.join()) {
        seen.arp++;
        tap.send(arpReply(f));
      } else if (type === 0x0800 && f[23] === 17 && f.subarray(30, 34).join() === PEER_IP.join()) {
        const udp = 14 + (f[14] & 0xf) * 4;
        const text = new TextDecoder().decode(f.subarray(udp + 8));
        if (text.startsWith("late")) return void late.push(text);
        seen.udp = text;
        tap.send(udpReply(f, new TextEncoder().encode("pong")));
      }
    },
  });
  await ip("addr", "add", "10.77.0.1/24", "dev", IFNAME);
  await ip("link", "set", IFNAME, "up");
  const sock = dgram.createSocket("udp4");
  await new Promise<void>((r) => sock.bind(5000, "10.77.0.1", () => r()));
  const answer = new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no UDP answer")), 8000);
    sock.on("message", (m) => {
      clearTimeout(t);
      resolve(m.toString());
    });
  });
  sock.send(Buffer.from("ping"), 6000, "10.77.0.2");
  let reply = "";
  const paused = { paused: false, whilePaused: -1, after: [] as string[] };
  try {
    reply = await answer;
    open = false;
    const sent = Array.from({ length: 20 }, (_, i) => `late ${i}`);
    for (const m of sent) sock.send(Buffer.from(m), 6001, "10.77.0.2");
    await new Promise((r) => setTimeout(r, 300));
    paused.paused = tap.receivePaused;
    paused.whilePaused = late.length;
    open = true;
    tap.resumeReceive();
    for (let i = 0; i < 100 && late.length < sent.length; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    paused.after = late;
  } finally {
    sock.close();
    tap.close();
    await own.stop();
  }
  console.log(JSON.stringify({ ...seen, reply, ...paused }));
  return seen.arp > 0 && seen.udp === "ping" && reply === "pong" ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
