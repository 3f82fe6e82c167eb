/**
 * A small seeded PRNG for the fuzzers (splitmix32): every run prints its seed and replays
 * exactly from it.
 *
 * @module
 */

/** A seeded random source with the picks the fuzzers need. */
export class Rng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** Uniform u32. */
  u32(): number {
    let z = (this.#s = (this.#s + 0x9e3779b9) >>> 0);
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of `xs`. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** Uniform u64. */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let k = 0; k < 4 && i + k < n; k++) out[i + k] = (v >>> (8 * k)) & 0xff;
    }
    return out;
  }

  /**
   * A value that often sits at an interesting boundary of `limit`: 0, 1, limit-1, limit,
   * limit+1, the type's maximum, or a random one.
   */
  edge(limit: number, max = 0xffff_ffff): number {
    const c = [0, 1, limit - 1, limit, limit + 1, max, max - 1, this.int(limit + 1)];
    return Math.max(0, Math.min(max, this.pick(c)));
  }

  /** A fresh seed derived from this stream (for sub-generators). */
  fork(): Rng {
    return new Rng(this.u32());
  }
}

/** A seed from the environment (`VFUD_FUZZ_SEED`), the argument, or the clock. */
export function seedFrom(arg?: string | number): number {
  const env = Deno.env.get("VFUD_FUZZ_SEED");
  const v = arg ?? env;
  if (v !== undefined && v !== "") {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad seed ${v}`);
    return n >>> 0;
  }
  return (Date.now() ^ (Math.random() * 0x1_0000_0000)) >>> 0;
}
