/**
 * A tiny seeded PRNG (mulberry32) for the demo generator. Not for anything security-related:
 * its only job is that the same seed gives the same synthetic data on every machine.
 */

/** Mixes a 32-bit value (the murmur3 finaliser); used to derive independent streams. */
export function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A stream seed for item `index` of a run with `seed`, so any slice of a run can be generated alone. */
export function streamSeed(seed: number, index: number): number {
  const lo = index >>> 0;
  const hi = Math.floor(index / 0x1_0000_0000) >>> 0;
  return mix32(mix32(seed >>> 0) ^ mix32(lo + 0x9e3779b9) ^ Math.imul(hi, 0x27d4eb2f));
}

export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** A float in [min, max), rounded to `decimals` places. */
  float(min: number, max: number, decimals = 1): number {
    const f = 10 ** decimals;
    return Math.round((min + this.next() * (max - min)) * f) / f;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A uniformly chosen element; the list must not be empty. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) {
      throw new RangeError('pick from an empty list');
    }
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** `n` distinct elements (or all of them, if fewer), in random order. */
  sample<T>(items: readonly T[], n: number): T[] {
    const copy = items.slice();
    const k = Math.min(n, copy.length);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.next() * (copy.length - i));
      const tmp = copy[i] as T;
      copy[i] = copy[j] as T;
      copy[j] = tmp;
    }
    return copy.slice(0, k);
  }

  /** Picks by weight: `[[item, weight], ...]` with positive weights. */
  weighted<T>(entries: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of entries) {
      total += w;
    }
    let r = this.next() * total;
    for (const [item, w] of entries) {
      r -= w;
      if (r < 0) {
        return item;
      }
    }
    const last = entries[entries.length - 1];
    if (last === undefined) {
      throw new RangeError('weighted pick from an empty list');
    }
    return last[0];
  }
}
