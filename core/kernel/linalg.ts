/**
 * Dense symmetric solves for the kernel normal equations (n ≲ 2000), over row-major Float64Array.
 *
 * Every solve is checked: the system is equilibrated (unit diagonal), factorised by Cholesky, and
 * its condition number estimated; a failed factorisation or a condition number past the limit
 * falls back to an eigen-decomposition whose small eigenvalues are dropped (a truncated
 * pseudo-inverse). ml-matrix was not adopted: its LU judged a rank-deficient normal matrix
 * non-singular, and these ~100 lines are faster on flat arrays.
 */

export interface SolveResult {
  x: Float64Array;
  /** Estimated 2-norm condition number of the equilibrated matrix (Infinity when singular). */
  condition: number;
  method: 'cholesky' | 'eigen-truncated';
  /** Rank used (n for Cholesky). */
  rank: number;
}

/** In-place Cholesky A = L Lᵀ (lower triangle overwritten with L). Returns false on a non-positive pivot. */
export function choleskyInPlace(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j]!;
    for (let k = 0; k < j; k++) d -= a[rj + k]! * a[rj + k]!;
    if (!(d > 0) || !Number.isFinite(d)) return false;
    const ljj = Math.sqrt(d);
    a[rj + j] = ljj;
    const inv = 1 / ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j]!;
      for (let k = 0; k < j; k++) s -= a[ri + k]! * a[rj + k]!;
      a[ri + j] = s * inv;
    }
  }
  return true;
}

/** Solve L Lᵀ x = b with the factor from choleskyInPlace; b is overwritten with x. */
export function choleskySolveInPlace(l: Float64Array, n: number, b: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= l[ri + k]! * b[k]!;
    b[i] = s / l[ri + i]!;
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i]!;
    for (let k = i + 1; k < n; k++) s -= l[k * n + i]! * b[k]!;
    b[i] = s / l[i * n + i]!;
  }
}

function symMatVec(a: Float64Array, n: number, x: Float64Array, out: Float64Array): void {
  for (let i = 0; i < n; i++) {
    let s = 0;
    const ri = i * n;
    for (let k = 0; k < n; k++) s += a[ri + k]! * x[k]!;
    out[i] = s;
  }
}

function normalize(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const norm = Math.sqrt(s);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return norm;
}

/**
 * Condition number of SPD `a` (λmax/λmin) by power iteration on A and on A⁻¹ (through its
 * Cholesky factor). A lower bound that converges quickly to the true value; enough to decide
 * whether a solve can be trusted.
 */
export function conditionEstimate(a: Float64Array, l: Float64Array, n: number, iterations = 40): number {
  // Deterministic, non-degenerate start vector.
  const v = new Float64Array(n);
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = 1 + ((i * 7919) % 101) / 101;
  normalize(v);
  let lmax = 0;
  for (let it = 0; it < iterations; it++) {
    symMatVec(a, n, v, w);
    lmax = normalize(w);
    v.set(w);
  }
  for (let i = 0; i < n; i++) v[i] = 1 + ((i * 104729) % 103) / 103;
  normalize(v);
  let linvmax = 0;
  for (let it = 0; it < iterations; it++) {
    choleskySolveInPlace(l, n, v);
    linvmax = normalize(v);
  }
  return lmax * linvmax;
}

/** Eigen-decomposition of symmetric `a` by cyclic Jacobi. Returns values and column eigenvectors. */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += m[i * n + i]! * m[i * n + i]!;
      for (let j = i + 1; j < n; j++) off += m[i * n + j]! * m[i * n + j]!;
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (apq === 0) continue;
        const app = m[p * n + p]!;
        const aqq = m[q * n + q]!;
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p]!;
          const mkq = m[k * n + q]!;
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k]!;
          const mqk = m[q * n + k]!;
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = m[i * n + i]!;
  return { values, vectors: v };
}

/**
 * Scale factors d = 1/√diag(A) (0 for an empty row) that give D·A·D a unit diagonal: columns in
 * different units (kernel terms, background) otherwise inflate the condition number without
 * making the problem any harder.
 */
function equilibration(a: Float64Array, n: number): Float64Array {
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const aii = a[i * n + i]!;
    d[i] = aii > 0 && Number.isFinite(aii) ? 1 / Math.sqrt(aii) : 0;
  }
  return d;
}

/** Gram matrix G_ab = v_a·v_b (row-major), visiting only the non-zeros of the sparser vector of each pair. */
export function gramMatrix(vectors: readonly Float64Array[]): Float64Array {
  const nv = vectors.length;
  const nz = vectors.map((v) => {
    const idx: number[] = [];
    for (let p = 0; p < v.length; p++) if (v[p] !== 0) idx.push(p);
    return Int32Array.from(idx);
  });
  const G = new Float64Array(nv * nv);
  for (let a = 0; a < nv; a++) {
    for (let b = a; b < nv; b++) {
      const idx = nz[a]!.length <= nz[b]!.length ? nz[a]! : nz[b]!;
      const va = vectors[a]!;
      const vb = vectors[b]!;
      let s = 0;
      for (let k = 0; k < idx.length; k++) s += va[idx[k]!]! * vb[idx[k]!]!;
      G[a * nv + b] = s;
      G[b * nv + a] = s;
    }
  }
  return G;
}

/**
 * Solve the symmetric positive semi-definite system A x = b (A row-major n×n, not modified).
 * Cholesky on the equilibrated matrix when it factorises and its condition is ≤ maxCondition;
 * otherwise a pseudo-inverse keeping eigenvalues ≥ λmax / maxCondition.
 */
export function solveSymmetric(a: Float64Array, b: Float64Array, n: number, maxCondition = 5e7): SolveResult {
  const d = equilibration(a, n);
  const s = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) s[i * n + j] = a[i * n + j]! * d[i]! * d[j]!;
    if (d[i] === 0) s[i * n + i] = 1; // an all-zero row: leave that unknown at 0 (rhs is 0 too)
  }
  const rhs = new Float64Array(n);
  for (let i = 0; i < n; i++) rhs[i] = b[i]! * d[i]!;

  const l = Float64Array.from(s);
  if (choleskyInPlace(l, n)) {
    const condition = conditionEstimate(s, l, n);
    if (condition <= maxCondition) {
      const x = Float64Array.from(rhs);
      choleskySolveInPlace(l, n, x);
      for (let i = 0; i < n; i++) x[i]! *= d[i]!;
      return { x, condition, method: 'cholesky', rank: n };
    }
  }
  const { values, vectors } = symmetricEigen(s, n);
  let lmax = 0;
  let lmin = Infinity;
  for (let i = 0; i < n; i++) {
    lmax = Math.max(lmax, values[i]!);
    lmin = Math.min(lmin, values[i]!);
  }
  const floor = lmax / maxCondition;
  const x = new Float64Array(n);
  let rank = 0;
  for (let k = 0; k < n; k++) {
    const lk = values[k]!;
    if (!(lk > floor)) continue;
    rank++;
    let proj = 0;
    for (let i = 0; i < n; i++) proj += vectors[i * n + k]! * rhs[i]!;
    proj /= lk;
    for (let i = 0; i < n; i++) x[i]! += proj * vectors[i * n + k]!;
  }
  for (let i = 0; i < n; i++) x[i]! *= d[i]!;
  const condition = lmin > 0 ? lmax / lmin : Infinity;
  return { x, condition, method: 'eigen-truncated', rank };
}

/**
 * The per-candidate variant: one Cholesky serves the solution and the kernel-sum variance
 * ((A⁻¹)₀₀), and the conditioning check is the cheap pivot bound (max/min pivot)² — a lower bound of
 * the condition number. Only when the factorisation fails or that bound exceeds maxCondition does it
 * fall back to the checked solve (power iterations, eigen truncation).
 */
export function solveWithVariance0(a: Float64Array, b: Float64Array, n: number, maxCondition = 5e7): { x: Float64Array; var0: number; method: SolveResult['method']; rank: number } {
  const d = equilibration(a, n);
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) l[i * n + j] = a[i * n + j]! * d[i]! * d[j]!;
    if (d[i] === 0) l[i * n + i] = 1;
  }
  let ok = choleskyInPlace(l, n);
  if (ok) {
    let pmin = Infinity;
    let pmax = 0;
    for (let i = 0; i < n; i++) {
      const p = l[i * n + i]!;
      if (p < pmin) pmin = p;
      if (p > pmax) pmax = p;
    }
    ok = (pmax / pmin) ** 2 <= maxCondition;
  }
  if (!ok) {
    const full = solveSymmetric(a, b, n, maxCondition);
    const e0 = new Float64Array(n);
    e0[0] = 1;
    const v = solveSymmetric(a, e0, n, maxCondition).x[0]!;
    return { x: full.x, var0: v, method: full.method, rank: full.rank };
  }
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = b[i]! * d[i]!;
  choleskySolveInPlace(l, n, x);
  for (let i = 0; i < n; i++) x[i]! *= d[i]!;
  const e = new Float64Array(n);
  e[0] = d[0]!;
  choleskySolveInPlace(l, n, e);
  return { x, var0: e[0]! * d[0]!, method: 'cholesky', rank: n };
}
