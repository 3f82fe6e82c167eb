/**
 * A client for the fault suite, run as its own process so the test can SIGKILL it mid-I/O:
 * connects, maps guest RAM (memfd: fd-backed; array: message DMA), brings virtio-blk up and
 * writes sector after sector (never the same one twice), each with a pattern derived from the
 * sector, keeping several requests in flight. It prints "ACK <sector>" for every write the device
 * completed with status OK (an acknowledged write), and "READY" once writing.
 *
 *   deno run -A fault_client.ts SOCKET memfd|array FIRST_SECTOR SECTORS
 *
 * @module
 */
import {
  ArrayRam,
  GuestArena,
  type GuestRam,
  MemfdRam,
  VfioUserClient,
  virtioBlk,
  VirtioBlkDriver,
} from "../../client/mod.ts";

/** The 512 bytes written to `sector` (what the image must hold once acknowledged). */
export function sectorPattern(sector: number): Uint8Array {
  const out = new Uint8Array(512);
  let x = (sector * 2654435761) >>> 0 || 1;
  for (let i = 0; i < 512; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function main(): Promise<void> {
  const [path, mode, first, count] = Deno.args;
  const ram: GuestRam = mode === "memfd" ? new MemfdRam(4 << 20) : new ArrayRam(4 << 20);
  const c = await VfioUserClient.connect(path, { timeoutMs: 20_000 });
  await c.version();
  await c.dmaMap({ iova: 0n, size: BigInt(ram.bytes.length), fd: ram.fd, backing: ram.bytes });
  const drv = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram.bytes) });
  const out = Deno.stdout;
  const say = (s: string) => out.writeSync(new TextEncoder().encode(s + "\n"));
  say("READY");
  const end = Number(first) + Number(count);
  let next = Number(first);
  const inflight = new Map<number, number>(); // head -> sector
  while (next < end || inflight.size) {
    while (inflight.size < 4 && next < end) {
      // Two sectors per request: 1 KiB, so requests also span descriptors.
      const data = new Uint8Array(1024);
      data.set(sectorPattern(next), 0);
      data.set(sectorPattern(next + 1), 512);
      inflight.set(drv.enqueue({ type: virtioBlk.ReqType.OUT, sector: BigInt(next), data }), next);
      next += 2;
    }
    await drv.kick();
    const [head, sector] = inflight.entries().next().value!;
    const done = await drv.wait(head);
    inflight.delete(head);
    if (done.status === virtioBlk.BlkStatus.OK) say(`ACK ${sector}`);
  }
  say("DONE");
  // Stay connected until killed: the test decides when the client dies.
  await new Promise(() => {});
}

if (import.meta.main) await main();
