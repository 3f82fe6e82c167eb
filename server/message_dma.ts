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
import { GuestFault } from "../dma/guest_memory.ts";
import { FifoBudget, WaitQueue } from "../sys/waiters.ts";
import { ClientRefusal, type ServerRequests } from "./requests.ts";

/**
 * Largest data payload of one DMA message we send or ask for (README, "Message-based DMA":
 * chosen from measurements).
 */
export const DEFAULT_DMA_CHUNK = 128 * 1024;

/**
 * Most DMA_READ reply bytes we let be outstanding at once. QEMU 11.1 sends its reply to a
 * server request with one non-blocking write and does not finish a short write: the rest of
 * the reply is dropped and the stream is corrupt (its trace shows `vfio_user_send_write ...
 * wrote` less than the message). A short write happens as soon as the replies waiting in the
 * socket exceed the sender's socket buffer (net.core.wmem_default, 208 KiB here). So all reply
 * bytes in flight, plus headroom for the client's own commands, must stay below that.
 */
export const DMA_READ_WINDOW = 128 * 1024;

/** MessageDma over one connection, with the device's bounce pool. */
export class RequestDma implements MessageDma {
  readonly #requests: ServerRequests;
  readonly #pool: BouncePool;
  readonly #chunk: number;
  /** Bytes of DMA_READ replies that may be outstanding (see {@link DMA_READ_WINDOW}). */
  readonly #window = new FifoBudget(DMA_READ_WINDOW);
  readonly #onWriteError: (e: Error) => void;
  #writesPending = 0;
  readonly #settled = new WaitQueue();
  /** While set, nothing waits for the client: waits fail with it at once (see fence()). */
  #fence: Error | undefined;

  constructor(
    requests: ServerRequests,
    pool: BouncePool,
    chunk: number,
    onWriteError: (e: Error) => void,
  ) {
    this.#requests = requests;
    this.#pool = pool;
    this.#onWriteError = onWriteError;
    this.#chunk = Math.min(chunk, DMA_READ_WINDOW - REPLY_OVERHEAD);
    // VERSION bounds the client's max_data_xfer_size: a chunk below 1 would loop forever.
    if (!(this.#chunk >= 1)) throw new RangeError(`DMA chunk of ${chunk} bytes`);
  }

  get maxBuffer(): number {
    return this.#pool.limit;
  }

  acquire(length: number): Promise<Uint8Array> {
    if (!this.#fence) return this.#pool.acquire(length);
    const buf = this.#pool.tryAcquire(length);
    return buf ? Promise.resolve(buf) : Promise.reject(this.#fence);
  }

  /**
   * Stops every wait for the client until the returned function is called: outstanding
   * DMA_READs and DMA_WRITE acknowledgements fail now (late replies are dropped), bounce-buffer
   * and window waiters fail, and new reads or waits fail at once. Posted writes still go out.
   * A device reset uses it: it must complete without the client's help (the client may not
   * serve our requests while it waits for the reset's reply).
   */
  fence(reason: Error): () => void {
    this.#fence = reason;
    this.#requests.cancelAll(reason);
    this.#window.failWaiters(reason);
    this.#pool.failWaiters(reason);
    this.#settled.wakeAll();
    return () => {
      if (this.#fence === reason) this.#fence = undefined;
    };
  }

  releaseBuffer(buf: Uint8Array): void {
    this.#pool.release(buf);
  }

  async read(addr: bigint, dst: Uint8Array): Promise<void> {
    const parts: Promise<void>[] = [];
    for (let off = 0; off < dst.length; off += this.#chunk) {
      if (this.#fence) {
        await settleAll(parts);
        throw this.#fence;
      }
      const part = dst.subarray(off, Math.min(off + this.#chunk, dst.length));
      const cost = part.length + REPLY_OVERHEAD;
      try {
        await this.#window.take(cost);
      } catch (e) {
        await settleAll(parts);
        throw e;
      }
      parts.push(
        this.#readPart(addr + BigInt(off), part).finally(() => this.#window.give(cost)),
      );
    }
    await settleAll(parts);
  }

  #readPart(a: bigint, part: Uint8Array): Promise<void> {
    const req = DmaRead.encodeRequest({ address: a, count: BigInt(part.length) });
    return this.#requests.request(Command.DMA_READ, [req], (payload) => {
      const r = DmaRead.decodeReply(payload);
      if (r.address !== a || r.data.length !== part.length) {
        throw new VfioUserError(Errno.EIO, `DMA_READ reply for 0x${r.address.toString(16)}`);
      }
      part.set(r.data);
    }).catch(refusalAsFault(a, part.length));
  }

  write(addr: bigint, src: Uint8Array): Promise<void> {
    this.#writesPending++;
    return this.#sendWrite(addr, src).catch((e: Error) => {
      // Callers post writes without waiting: the failure must not go unnoticed.
      this.#onWriteError(e);
      throw e;
    }).finally(() => {
      if (--this.#writesPending === 0) this.#settled.wakeAll();
    });
  }

  writesPending(): boolean {
    return this.#writesPending > 0 && !this.#fence;
  }

  settled(): Promise<void> | undefined {
    if (this.#writesPending === 0 || this.#fence) return undefined;
    return this.#settled.wait();
  }

  /** Sends every chunk now (so `src` is free on return); resolves on the last acknowledgement. */
  #sendWrite(addr: bigint, src: Uint8Array): Promise<void> {
    const parts: Promise<void>[] = [];
    for (let off = 0; off < src.length; off += this.#chunk) {
      const part = src.subarray(off, Math.min(off + this.#chunk, src.length));
      const head = new Uint8Array(16);
      const v = new DataView(head.buffer);
      v.setBigUint64(0, addr + BigInt(off), true);
      v.setBigUint64(8, BigInt(part.length), true);
      // Header fields then the data straight from the caller's buffer (gather send, no copy).
      parts.push(
        this.#requests.request(Command.DMA_WRITE, [head, part], (payload) => {
          DmaWrite.decodeReply(payload);
        }).catch(refusalAsFault(addr + BigInt(off), part.length)),
      );
    }
    return settleAll(parts);
  }
}

/**
 * The client answers a DMA message with an error when it cannot reach that guest range on its
 * side: for the device that is the guest's doing, like an access outside every DMA map.
 */
function refusalAsFault(addr: bigint, length: number): (e: unknown) => never {
  return (e) => {
    if (!(e instanceof ClientRefusal)) throw e;
    throw new GuestFault(Errno.EFAULT, addr, length, e.message, { cause: e });
  };
}

/** Header plus address and count of a DMA_READ reply. */
const REPLY_OVERHEAD = 32;

/** Waits for every part (so no reply lands in a released buffer), then throws the first error. */
async function settleAll(parts: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(parts);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
