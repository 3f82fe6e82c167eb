/**
 * Test packets: Ethernet/IPv4/TCP-or-UDP frames built the way Linux hands them to a NIC with
 * checksum offload (CHECKSUM_PARTIAL: the L4 checksum field holds the pseudo-header sum), and an
 * independent, deliberately naive checksum verifier.
 *
 * @module
 */

/** Naive RFC 1071 sum of `bytes` (no shortcuts shared with the code under test). */
export function naiveSum(bytes: number[]): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i] << 8) + (bytes[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Layout of a built packet. */
export interface Packet {
  frame: Uint8Array;
  l3: number;
  l4: number;
  /** Offset of the L4 checksum field. */
  csumAt: number;
  /** Offset of the IPv4 header checksum field. */
  ipCsumAt: number;
}

/** Options of {@link ipv4Packet}. */
export interface PacketOptions {
  proto?: "tcp" | "udp";
  payload?: number;
  /** Fill the IP header checksum (else 0). */
  ipChecksum?: boolean;
  /** L4 checksum field: "partial" (pseudo header without length, as for TSO), "offload"
   * (pseudo header with length, CHECKSUM_PARTIAL), "full" (complete) or "zero". */
  l4?: "partial" | "offload" | "full" | "zero";
  vlan?: number;
  dst?: Uint8Array;
  tcpFlags?: number;
}

const SRC_IP = [10, 0, 0, 1];
const DST_IP = [10, 0, 0, 2];

/** Builds an Ethernet + IPv4 + TCP/UDP frame. */
export function ipv4Packet(o: PacketOptions = {}): Packet {
  const proto = o.proto ?? "tcp";
  const l4hdr = proto === "tcp" ? 20 : 8;
  const payload = o.payload ?? 100;
  const eth = o.vlan === undefined ? 14 : 18;
  const f = new Uint8Array(eth + 20 + l4hdr + payload);
  f.set(o.dst ?? Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56), 0);
  f.set([2, 0, 0, 0, 0, 9], 6);
  if (o.vlan !== undefined) f.set([0x81, 0x00, o.vlan >> 8, o.vlan & 0xff], 12);
  f.set([0x08, 0x00], eth - 2);
  const l3 = eth;
  const total = 20 + l4hdr + payload;
  f.set([0x45, 0, total >> 8, total & 0xff, 0x12, 0x34, 0x40, 0, 64, proto === "tcp" ? 6 : 17], l3);
  f.set([...SRC_IP, ...DST_IP], l3 + 12);
  const l4 = l3 + 20;
  f.set([0x30, 0x39, 0x00, 0x50], l4); // ports 12345 -> 80
  if (proto === "tcp") {
    f.set([0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0], l4 + 4); // seq, ack
    f[l4 + 12] = 5 << 4;
    f[l4 + 13] = o.tcpFlags ?? 0x18; // PSH|ACK
    f.set([0xff, 0xff], l4 + 14);
  } else {
    f.set([(8 + payload) >> 8, (8 + payload) & 0xff], l4 + 4);
  }
  for (let i = 0; i < payload; i++) f[l4 + l4hdr + i] = (i * 7 + 3) & 0xff;
  const csumAt = l4 + (proto === "tcp" ? 16 : 6);
  const ipCsumAt = l3 + 10;
  if (o.ipChecksum) put16(f, ipCsumAt, ~naiveSum([...f.subarray(l3, l3 + 20)]) & 0xffff);
  const mode = o.l4 ?? "offload";
  const pseudo = (len: number) =>
    naiveSum([...SRC_IP, ...DST_IP, 0, proto === "tcp" ? 6 : 17, len >> 8, len & 0xff]);
  if (mode === "partial") put16(f, csumAt, pseudo(0));
  if (mode === "offload") put16(f, csumAt, pseudo(l4hdr + payload));
  if (mode === "full") {
    put16(f, csumAt, 0);
    const s = naiveSum([
      pseudo(l4hdr + payload) >> 8,
      pseudo(l4hdr + payload) & 0xff,
      ...f.subarray(l4),
    ]);
    put16(f, csumAt, ~s & 0xffff || 0xffff);
  }
  return { frame: f, l3, l4, csumAt, ipCsumAt };
}

function put16(f: Uint8Array, at: number, v: number): void {
  f[at] = (v >> 8) & 0xff;
  f[at + 1] = v & 0xff;
}

/** True when the IPv4 header checksum at `l3` verifies. */
export function ipHeaderOk(f: Uint8Array, l3: number): boolean {
  const ihl = (f[l3] & 0xf) * 4;
  return naiveSum([...f.subarray(l3, l3 + ihl)]) === 0xffff;
}

/** True when the TCP/UDP checksum of the IPv4 packet at `l3` verifies (pseudo header included). */
export function l4ChecksumOk(f: Uint8Array, l3: number): boolean {
  const ihl = (f[l3] & 0xf) * 4;
  const total = (f[l3 + 2] << 8) | f[l3 + 3];
  const len = total - ihl;
  const bytes = [
    ...f.subarray(l3 + 12, l3 + 20),
    0,
    f[l3 + 9],
    len >> 8,
    len & 0xff,
    ...f.subarray(l3 + ihl, l3 + total),
  ];
  return naiveSum(bytes) === 0xffff;
}
