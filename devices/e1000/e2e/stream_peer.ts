/**
 * A user-space host at the far end of a `-netdev stream` cable, for the e1000 e2e check of the
 * stream backend: connects to (or listens on) a UNIX socket, speaks QEMU's framing (4-byte
 * big-endian length, then the frame), answers ARP requests and ICMP echo requests for its IP,
 * and prints "PEER" lines. Ends after `seconds` or on SIGTERM.
 *
 *   deno run --allow-all stream_peer.ts SOCKET IP [seconds] [server]
 *
 * @module
 */
import { EventLoop } from "../../../transport/event_loop.ts";
import { StreamBackend } from "../../net/stream.ts";

const [path, ipText, secondsText, mode] = Deno.args;
const ip = ipText.split(".").map(Number);
const mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const loop = new EventLoop();
const peer = StreamBackend.open(loop, { path, server: mode === "server", reconnectMs: 100 });
let arps = 0, pings = 0;

function checksum(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function isForUs(f: Uint8Array, at: number): boolean {
  return f.subarray(at, at + 4).join(".") === ip.join(".");
}

function arpReply(req: Uint8Array): Uint8Array {
  const f = new Uint8Array(60);
  f.set(req.subarray(6, 12), 0);
  f.set(mac, 6);
  f.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
  f.set(mac, 22);
  f.set(ip, 28);
  f.set(req.subarray(22, 32), 32);
  return f;
}

function echoReply(req: Uint8Array): Uint8Array {
  const f = req.slice();
  const l3 = 14, ihl = (f[l3] & 0xf) * 4, total = (f[l3 + 2] << 8) | f[l3 + 3];
  f.set(req.subarray(6, 12), 0);
  f.set(mac, 6);
  f.set(req.subarray(l3 + 16, l3 + 20), l3 + 12);
  f.set(req.subarray(l3 + 12, l3 + 16), l3 + 16);
  f[l3 + 10] = f[l3 + 11] = 0;
  const c = checksum(f, l3, l3 + ihl);
  f.set([c >> 8, c & 0xff], l3 + 10);
  const icmp = l3 + ihl;
  f[icmp] = 0; // echo reply
  f[icmp + 2] = f[icmp + 3] = 0;
  const ic = checksum(f, icmp, l3 + total);
  f.set([ic >> 8, ic & 0xff], icmp + 2);
  return f;
}

peer.attach({
  linkChanged: (up) => console.log(`PEER link=${up ? "up" : "down"}`),
  receive: (f) => {
    const type = (f[12] << 8) | f[13];
    if (type === 0x0806 && f[21] === 1 && isForUs(f, 38)) {
      arps++;
      peer.send(arpReply(f));
    } else if (type === 0x0800 && f[23] === 1 && f[34] === 8 && isForUs(f, 30)) {
      pings++;
      peer.send(echoReply(f));
    }
  },
});
const stop = () => loop.stop();
Deno.addSignalListener("SIGTERM", stop);
const timer = setTimeout(stop, Number(secondsText ?? 120) * 1000);
await loop.run();
clearTimeout(timer);
peer.close();
console.log(`PEER arp_replies=${arps} echo_replies=${pings}`);
Deno.exit(0);
