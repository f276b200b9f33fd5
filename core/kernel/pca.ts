/**
 * PCA compression of a basis (ip_diffim's usePcaForSpatialKernel): the single-candidate kernels,
 * each scaled to unit sum, give a mean kernel and principal components; [mean, PC1, …] renormalised
 * become the basis of the spatial fit. Candidate records are carried over exactly by the linear map
 * between the bases (a_old = T·a_new), so no pixels are revisited.
 *
 * An optional anchor kernel (solve.ts passes the regularised joint fit of one kernel to all the
 * candidates) is added to the basis as the direction anchor − mean, after the mean: see solve.ts.
 */
import { renormalizeImages } from './basis.ts';
import { gramMatrix, solveSymmetric } from './linalg.ts';

/**
 * Mean and top principal components (subspace iteration, deterministic start) of unit-sum kernels;
 * with `anchor`, [mean, anchor − mean, PC1, …] (the anchor scaled to unit sum first).
 */
export function pcaImages(kernels: Float64Array[], nComponents: number, anchor?: Float64Array): Float64Array[] {
  const n = kernels.length;
  const np = kernels[0]!.length;
  const mean = new Float64Array(np);
  for (const k of kernels) for (let p = 0; p < np; p++) mean[p]! += k[p]! / n;
  const centred = kernels.map((k) => k.map((v, p) => v - mean[p]!));
  const nPc = Math.max(0, Math.min(nComponents - 1, n - 1, np - 1));
  const vecs: Float64Array[] = [];
  for (let c = 0; c < nPc; c++) {
    const v = new Float64Array(np);
    for (let p = 0; p < np; p++) v[p] = Math.cos(0.7 * (c + 1) * p + 0.3 * c) + 1e-3 * ((p * 31 + c * 17) % 13);
    vecs.push(v);
  }
  const apply = (v: Float64Array) => {
    // Cᵀ(C v) without forming the covariance.
    const out = new Float64Array(np);
    for (const x of centred) {
      let d = 0;
      for (let p = 0; p < np; p++) d += x[p]! * v[p]!;
      if (d === 0) continue;
      for (let p = 0; p < np; p++) out[p]! += d * x[p]!;
    }
    return out;
  };
  const orthonormalize = (vs: Float64Array[]) => {
    for (let i = 0; i < vs.length; i++) {
      const v = vs[i]!;
      for (let j = 0; j < i; j++) {
        const u = vs[j]!;
        let d = 0;
        for (let p = 0; p < np; p++) d += u[p]! * v[p]!;
        for (let p = 0; p < np; p++) v[p]! -= d * u[p]!;
      }
      let s = 0;
      for (let p = 0; p < np; p++) s += v[p]! * v[p]!;
      const norm = Math.sqrt(s);
      if (norm > 0) for (let p = 0; p < np; p++) v[p]! /= norm;
    }
  };
  orthonormalize(vecs);
  for (let it = 0; it < 60 && vecs.length > 0; it++) {
    for (let i = 0; i < vecs.length; i++) vecs[i] = apply(vecs[i]!);
    orthonormalize(vecs);
  }
  // Drop components that carry nothing (fewer distinct kernels than requested).
  const useful = vecs.filter((v) => {
    const av = apply(v);
    let s = 0;
    for (let p = 0; p < np; p++) s += av[p]! * v[p]!;
    return s > 1e-14 * Math.max(1, n);
  });
  const extra: Float64Array[] = [];
  if (anchor) {
    const sum = anchor.reduce((a, b) => a + b, 0);
    const d = anchor.map((v, p) => v / sum - mean[p]!);
    let dd = 0;
    let mm = 0;
    for (let p = 0; p < np; p++) {
      dd += d[p]! * d[p]!;
      mm += mean[p]! * mean[p]!;
    }
    // Skipped when it adds nothing (the anchor is the mean, or has no usable sum).
    if (Number.isFinite(dd) && dd > 1e-20 * mm) extra.push(d);
  }
  return renormalizeImages([mean, ...extra, ...useful]);
}

/**
 * T with oldImages·T = newImages in the least-squares sense (exact when the old basis spans the
 * new one, as a delta-function basis does): T = (QᵀQ)⁻¹ Qᵀ E_new, nbOld × nbNew row-major.
 */
export function basisTransform(oldImages: Float64Array[], newImages: Float64Array[]): Float64Array {
  const nbOld = oldImages.length;
  const nbNew = newImages.length;
  const np = oldImages[0]!.length;
  const G = gramMatrix(oldImages);
  const T = new Float64Array(nbOld * nbNew);
  for (let j = 0; j < nbNew; j++) {
    const rhs = new Float64Array(nbOld);
    for (let a = 0; a < nbOld; a++) {
      const o = oldImages[a]!;
      let s = 0;
      for (let p = 0; p < np; p++) s += o[p]! * newImages[j]![p]!;
      rhs[a] = s;
    }
    const { x } = solveSymmetric(G, rhs, nbOld, 1e12);
    for (let a = 0; a < nbOld; a++) T[a * nbNew + j] = x[a]!;
  }
  return T;
}
