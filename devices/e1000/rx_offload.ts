/**
 * Receive checksum offload (SDM §3.2.9, RXCSUM §13.4.40): the IPv4 header checksum (IPOFLD) and
 * the TCP/UDP checksum of unfragmented IPv4 packets (TUOFLD) are verified and reported in the
 * descriptor's status (IPCS, TCPCS) and errors (IPE, TCPE); when nothing was checked IXSM tells
 * the driver to ignore the indications. The descriptor's checksum field carries the ones'
 * complement sum of the packet from RXCSUM.PCSS on.
 *
 * @module
 */
import { RXCSUM, RXD_ERR, RXD_STA } from "../../spec/e1000.ts";
import { checksumOk } from "./tx_offload.ts";
import { fold, getU16, sumWords } from "./checksum.ts";

/** What the receive path writes into the descriptor for checksums. */
export interface RxChecksum {
  status: number;
  errors: number;
  /** Packet checksum field. */
  csum: number;
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_VLAN = 0x8100;
const PROTO_TCP = 6;
const PROTO_UDP = 17;

/** Offset of the IPv4 header, or -1 when the frame does not carry IPv4. */
function ipv4Offset(frame: Uint8Array): number {
  if (frame.length < 14) return -1;
  let type = getU16(frame, 12);
  let l3 = 14;
  if (type === ETHERTYPE_VLAN && frame.length >= 18) {
    type = getU16(frame, 16);
    l3 = 18;
  }
  if (type !== ETHERTYPE_IPV4 || frame.length < l3 + 20) return -1;
  return frame[l3] >> 4 === 4 ? l3 : -1;
}

/** Checks a frame (without FCS) as RXCSUM asks. */
export function rxChecksum(frame: Uint8Array, rxcsum: number): RxChecksum {
  const out: RxChecksum = { status: 0, errors: 0, csum: packetSum(frame, rxcsum) };
  const l3 = ipv4Offset(frame);
  const ihl = l3 < 0 ? 0 : (frame[l3] & 0xf) * 4;
  if (l3 >= 0 && ihl >= 20 && l3 + ihl <= frame.length) {
    if (rxcsum & RXCSUM.IPOFLD) {
      out.status |= RXD_STA.IPCS;
      if (!checksumOk(frame, l3, l3 + ihl)) out.errors |= RXD_ERR.IPE;
    }
    if (rxcsum & RXCSUM.TUOFLD) checkL4(frame, l3, ihl, out);
  }
  if (!(out.status & (RXD_STA.IPCS | RXD_STA.TCPCS))) out.status |= RXD_STA.IXSM;
  return out;
}

function checkL4(frame: Uint8Array, l3: number, ihl: number, out: RxChecksum): void {
  const total = getU16(frame, l3 + 2);
  const fragment = getU16(frame, l3 + 6) & 0x3fff; // MF flag or fragment offset
  const proto = frame[l3 + 9];
  const end = l3 + total;
  const l4 = l3 + ihl;
  if (fragment || total < ihl || end > frame.length) return;
  if (proto === PROTO_TCP && end - l4 < 20) return;
  if (proto === PROTO_UDP && (end - l4 < 8 || getU16(frame, l4 + 6) === 0)) return;
  if (proto !== PROTO_TCP && proto !== PROTO_UDP) return;
  // Pseudo-header: source and destination address, protocol, L4 length.
  const pseudo = sumWords(frame, l3 + 12, l3 + 20, proto + (end - l4));
  out.status |= RXD_STA.TCPCS;
  if (!checksumOk(frame, l4, end, pseudo)) out.errors |= RXD_ERR.TCPE;
}

function packetSum(frame: Uint8Array, rxcsum: number): number {
  const start = rxcsum & RXCSUM.PCSS_MASK;
  return start < frame.length ? fold(sumWords(frame, start, frame.length)) : 0;
}
