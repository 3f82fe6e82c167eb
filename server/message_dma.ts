/**
 * Message-based DMA (spec, "VFIO_USER_DMA_READ" / "VFIO_USER_DMA_WRITE"): guest memory the
 * client shared no fd for is read and written by requests to the client. Transfers are split in
 * chunks of at most min(client max_data_xfer_size, our chunk cap) and all chunks of a transfer
 * are in flight at once, matched to replies by id.
 *
 * @module
 */
import { Command } from "../protocol/header.ts";
import { DmaRead, DmaWrite } from "../protocol/dma.ts";
import { Errno, VfioUserError } from "../protocol/errors.ts";
import type { MessageDma } from "../dma/memory.ts";
import type { BouncePool } from "../dma/bounce_pool.ts";
import type { ServerRequests } from "./requests.ts";

/**
 * Largest data payload of one DMA message we send or ask for. See README, "Message-based DMA":
 * chosen from measurements; larger messages do not make the transfers faster here.
 */
export const DEFAULT_DMA_CHUNK = 256 * 1024;

/** MessageDma over one connection, with the device's bounce pool. */
export class RequestDma implements MessageDma {
  readonly #requests: ServerRequests;
  readonly #pool: BouncePool;
  readonly #chunk: number;

  constructor(requests: ServerRequests, pool: BouncePool, chunk: number) {
    this.#requests = requests;
    this.#pool = pool;
    this.#chunk = chunk;
  }

  get maxBuffer(): number {
    return this.#pool.limit;
  }

  acquire(length: number): Promise<Uint8Array> {
    return this.#pool.acquire(length);
  }

  releaseBuffer(buf: Uint8Array): void {
    this.#pool.release(buf);
  }

  async read(addr: bigint, dst: Uint8Array): Promise<void> {
    const parts: Promise<void>[] = [];
    for (let off = 0; off < dst.length; off += this.#chunk) {
      const part = dst.subarray(off, Math.min(off + this.#chunk, dst.length));
      const a = addr + BigInt(off);
      const req = DmaRead.encodeRequest({ address: a, count: BigInt(part.length) });
      parts.push(this.#requests.request(Command.DMA_READ, [req], (payload) => {
        const r = DmaRead.decodeReply(payload);
        if (r.address !== a || r.data.length !== part.length) {
          throw new VfioUserError(Errno.EIO, `DMA_READ reply for 0x${r.address.toString(16)}`);
        }
        part.set(r.data);
      }));
    }
    await settleAll(parts);
  }

  async write(addr: bigint, src: Uint8Array): Promise<void> {
    const parts: Promise<void>[] = [];
    for (let off = 0; off < src.length; off += this.#chunk) {
      const part = src.subarray(off, Math.min(off + this.#chunk, src.length));
      const head = new Uint8Array(16);
      const v = new DataView(head.buffer);
      v.setBigUint64(0, addr + BigInt(off), true);
      v.setBigUint64(8, BigInt(part.length), true);
      // Header fields then the data straight from the caller's buffer (gather send, no copy).
      parts.push(this.#requests.request(Command.DMA_WRITE, [head, part], (payload) => {
        DmaWrite.decodeReply(payload);
      }));
    }
    await settleAll(parts);
  }
}

/** Waits for every part (so no reply lands in a released buffer), then throws the first error. */
async function settleAll(parts: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(parts);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
