/**
 * The client's view of its DMA maps, and the memory behind the ones the server reaches through
 * DMA_READ / DMA_WRITE messages. The client serves those requests from here.
 *
 * @module
 */
import { DmaMapFlags } from "../protocol/dma.ts";
import { Errno } from "./errors.ts";

/** One map as the client registered it (after the server accepted it). */
export interface ClientDmaMap {
  /** Guest (IO virtual) address. */
  iova: bigint;
  /** Length in bytes. */
  size: bigint;
  /** `DmaMapFlags` bits given to the server. */
  flags: number;
  /** Whether an fd went with the map (the server then mmaps it and sends no DMA messages). */
  viaFd: boolean;
  /** The client's bytes of the range (`size` long), when it can serve DMA messages for it. */
  backing?: Uint8Array;
}

/** Result of a lookup: a view of the bytes or the errno for the error reply. */
export type DmaLookup = { bytes: Uint8Array; map: ClientDmaMap } | { errno: number; why: string };

/** The client's DMA maps, sorted by address. */
export class ClientDmaMaps {
  #maps: ClientDmaMap[] = [];

  /** All maps in address order. */
  get maps(): readonly ClientDmaMap[] {
    return this.#maps;
  }

  /** Records a map the server accepted. */
  add(m: ClientDmaMap): void {
    if (m.backing && BigInt(m.backing.length) < m.size) {
      throw new RangeError(`DMA map backing of ${m.backing.length} bytes < size ${m.size}`);
    }
    this.#maps.push(m);
    this.#maps.sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  }

  /** Forgets the map that exactly matches the range (if any). */
  remove(iova: bigint, size: bigint): void {
    this.#maps = this.#maps.filter((m) => !(m.iova === iova && m.size === size));
  }

  /** Forgets every map (DMA_UNMAP ALL, or a new connection). */
  clear(): void {
    this.#maps = [];
  }

  /**
   * The client bytes of [addr, addr+count) if one map with backing memory covers all of it and
   * allows the access (`write` for DMA_WRITE).
   */
  lookup(addr: bigint, count: bigint, write: boolean): DmaLookup {
    const m = this.#maps.find((x) => addr >= x.iova && addr < x.iova + x.size);
    if (!m) return { errno: Errno.EFAULT, why: `0x${addr.toString(16)} is not mapped` };
    if (addr + count > m.iova + m.size) {
      return {
        errno: Errno.EFAULT,
        why: `access crosses the end of the map at 0x${m.iova.toString(16)}`,
      };
    }
    if (!m.backing) return { errno: Errno.EFAULT, why: "map has no client-side memory" };
    if ((m.flags & (write ? DmaMapFlags.WRITE : DmaMapFlags.READ)) === 0) {
      return {
        errno: Errno.EPERM,
        why: `map at 0x${m.iova.toString(16)} forbids ${write ? "writes" : "reads"}`,
      };
    }
    if (count > BigInt(Number.MAX_SAFE_INTEGER)) {
      return { errno: Errno.EINVAL, why: "count too large" };
    }
    const off = Number(addr - m.iova);
    return { bytes: m.backing.subarray(off, off + Number(count)), map: m };
  }
}
