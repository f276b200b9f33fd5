/**
 * Seeded PRNG for the simulator: xoshiro128** (fast, 32-bit integer ops only, passes BigCrush),
 * its 128-bit state expanded from (seed, stream) by splitmix32. Independent streams let each part
 * of a simulation (star positions, noise of each image…) draw its own numbers, so changing one
 * part never moves another.
 */
import { SimError } from './errors.ts';

/** splitmix32 output function: a bijective 32-bit avalanche mix. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

const TWO_PI = 2 * Math.PI;
const TWO_POW_M32 = 2 ** -32;

/** Below this mean Poisson draws are exact (inversion); above, a normal approximation. */
export const POISSON_EXACT_MAX = 30;

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = 0;
  private hasSpare = false;

  /** seed: any safe integer (all 53 bits matter); stream: which independent sequence. */
  constructor(seed: number, stream = 0) {
    if (!Number.isSafeInteger(seed)) throw new SimError(`seed must be a safe integer, got ${seed}`);
    if (!Number.isSafeInteger(stream)) throw new SimError(`stream must be a safe integer, got ${stream}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    let s = mix32(lo ^ mix32(hi ^ mix32((stream >>> 0) ^ 0x6a09e667)));
    const next = (): number => {
      s = (s + 0x9e3779b9) | 0;
      return mix32(s) | 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // all-zero state is a fixed point
  }

  /** Next raw 32-bit output as an unsigned integer. */
  nextUint32(): number {
    const b = this.b;
    const m = Math.imul(b, 5);
    const r = Math.imul((m << 7) | (m >>> 25), 9);
    const t = b << 9;
    this.c ^= this.a;
    this.d ^= b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = (this.d << 11) | (this.d >>> 21);
    return r >>> 0;
  }

  /** Uniform in the open interval (0, 1): never 0, so log(u) is always finite. */
  uniform(): number {
    return (this.nextUint32() + 0.5) * TWO_POW_M32;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal by Box–Muller; the second value of each pair is cached for the next call. */
  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const t = TWO_PI * this.uniform();
    this.spare = r * Math.sin(t);
    this.hasSpare = true;
    return r * Math.cos(t);
  }

  /**
   * Poisson deviate. mean < 30: exact, by inversion (sequential search of the CDF, O(mean) and
   * one uniform per draw). mean ≥ 30: mean + √mean·N(0,1), deliberately NOT rounded to an integer
   * (relative error of the shape is then < 2%, and images stay continuous). mean ≤ 0 gives 0.
   */
  poisson(mean: number): number {
    if (!(mean > 0)) return 0;
    if (mean >= POISSON_EXACT_MAX) return mean + Math.sqrt(mean) * this.normal();
    const u = this.uniform();
    let p = Math.exp(-mean);
    let cdf = p;
    let k = 0;
    // The cap only guards against the CDF stalling below u through rounding.
    while (u > cdf && k < 200) {
      k++;
      p *= mean / k;
      cdf += p;
    }
    return k;
  }
}
