/**
 * 2-D spatial functions of the kernel coefficients and the background: Chebyshev (first kind) or
 * plain polynomials of total degree ≤ order in coordinates scaled to [-1, 1] over a domain box
 * (the whole exposure, so every tile evaluates the same function). Terms are ordered by total
 * degree, then by rising power of y: 1, x, y, x², xy, y², …
 */
export interface SpatialDomain {
  x0: number;
  y0: number;
  width: number;
  height: number;
}

export type SpatialType = 'chebyshev1' | 'polynomial';

export function nSpatialTerms(order: number): number {
  return ((order + 1) * (order + 2)) / 2;
}

/** Values T_0..T_order (or 1, t, t², …) at t, into out[o …]. */
export function basis1d(type: SpatialType, order: number, t: number, out: Float64Array, o = 0): void {
  out[o] = 1;
  if (order >= 1) out[o + 1] = t;
  for (let k = 2; k <= order; k++) out[o + k] = type === 'chebyshev1' ? 2 * t * out[o + k - 1]! - out[o + k - 2]! : t * out[o + k - 1]!;
}

/** (x power, y power) of each term, in the order the evaluator fills them. */
export function termPowers(order: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let t = 0; t <= order; t++) for (let j = 0; j <= t; j++) out.push([t - j, j]);
  return out;
}

export function scaleToDomain(d: SpatialDomain, x: number, y: number): [number, number] {
  const sx = d.width > 1 ? (2 * (x - d.x0)) / (d.width - 1) - 1 : 0;
  const sy = d.height > 1 ? (2 * (y - d.y0)) / (d.height - 1) - 1 : 0;
  return [sx, sy];
}

/** A reusable evaluator: `terms(x, y)` fills and returns the term values at parent pixel (x, y). */
export function spatialEvaluator(type: SpatialType, order: number, domain: SpatialDomain): (x: number, y: number, out?: Float64Array) => Float64Array {
  const n = nSpatialTerms(order);
  const bx = new Float64Array(order + 1);
  const by = new Float64Array(order + 1);
  return (x: number, y: number, out = new Float64Array(n)) => {
    const [sx, sy] = scaleToDomain(domain, x, y);
    basis1d(type, order, sx, bx);
    basis1d(type, order, sy, by);
    let k = 0;
    for (let t = 0; t <= order; t++) {
      for (let j = 0; j <= t; j++) out[k++] = bx[t - j]! * by[j]!;
    }
    return out;
  };
}
