// Deterministic PRNG for the fuzzer: every choice a run makes comes from its seed.
// mulberry32: 32-bit state, good enough for test-case generation, trivially
// reproducible in any language.

export function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  constructor(seed) {
    this.seed = seed >>> 0;
    // Scramble first (murmur3's fmix32): mulberry32's first outputs for
    // neighbouring small seeds are close to each other.
    let h = this.seed ^ 0x5bd1e995;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    this.next = mulberry32(h >>> 0);
  }
  /** A float in [0, 1). */
  float() {
    return this.next();
  }
  /** An integer in [0, n). */
  int(n) {
    return Math.floor(this.next() * n);
  }
  /** An integer in [lo, hi]. */
  range(lo, hi) {
    return lo + this.int(hi - lo + 1);
  }
  chance(p) {
    return this.next() < p;
  }
  pick(arr) {
    return arr[this.int(arr.length)];
  }
  /** Picks from [[weight, value], ...]. */
  weighted(entries) {
    let total = 0;
    for (const [w] of entries) total += w;
    let r = this.next() * total;
    for (const [w, v] of entries) {
      if ((r -= w) < 0) return v;
    }
    return entries[entries.length - 1][1];
  }
  /** A new independent generator derived from this one (for workers, callbacks). */
  fork() {
    return new Rng((this.int(0x100000000) ^ 0x9e3779b9) >>> 0);
  }
  shuffle(arr) {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [arr[i], arr[j]] = [arr[j], arr[i]];
    }
    return arr;
  }
}
