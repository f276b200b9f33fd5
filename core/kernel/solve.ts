/**
 * The solve step: from candidate records (from one image or merged from many tiles) to the one
 * spatially varying kernel solution, following ip_diffim's loop:
 *
 *   1. single-kernel fit of each candidate; reject |mean D/σ| > candidateResidualMeanMax or
 *      std > candidateResidualStdMax;
 *   2. kernel-sum clipping (maxKsumSigma about the clipped mean) — rejects variable stars;
 *   3. (delta-function) PCA compression of the basis;
 *   4. spatial solve over the best nStarPerCell candidates per cell (≤ maxCandidates), then spatial
 *      clipping of candidates the spatial model fits badly, replacing them with the next in their
 *      cell; at most maxSpatialIterations solves.
 *
 * Spatial model: coefficient a_i(x, y) = Σ_s θ_is f_s(x, y) for kernels i ≥ 1, a_0 constant, and the
 * background Σ_t β_t f_t(x, y); within a candidate's stamp both are evaluated at its centre, so the
 * spatial normal equations are Σ_c P_cᵀ M_c P_c — a sum over records, independent of how they were split.
 */
import { median, robustStd } from '../image/stats.ts';
import { type BasisSpec, basisCount, basisImages } from './basis.ts';
import type { KernelConfig } from './config.ts';
import { KernelError } from './errors.ts';
import { solveSymmetric, solveWithVariance0, type SolveResult } from './linalg.ts';
import { basisTransform, pcaImages } from './pca.ts';
import { type CandidateRecord, transformRecord } from './record.ts';
import { regularizationMatrix } from './regularize.ts';
import { truncateCells } from './select.ts';
import type { CandidateReport, KernelSolution } from './solution.ts';
import { type SpatialDomain, nSpatialTerms, spatialEvaluator } from './spatial.ts';

export interface SolveContext {
  config: KernelConfig;
  basis: BasisSpec;
  basisMode: string;
  /** The whole exposure's bounding box: the domain of the spatial functions and of the cells. */
  domain: SpatialDomain;
  mode: 'convolveTemplate' | 'convolveScience';
  fwhm: { template: number; science: number };
  refVarianceFactor: number;
  /** Extra counts to report if the solve fails for lack of candidates (stars found, rejected at selection…). */
  selectionCounts?: Record<string, number>;
}

export interface ResidualStats {
  chi2: number;
  mean: number;
  std: number;
  n: number;
}

/** Residual statistics of D/σ over a record's fit region for local coefficients a (length nc). */
export function residualStats(rec: CandidateRecord, a: Float64Array): ResidualStats {
  const nc = rec.nc;
  let aB = 0;
  let aMa = 0;
  let ga = 0;
  for (let i = 0; i < nc; i++) {
    aB += a[i]! * rec.B[i]!;
    ga += a[i]! * rec.g[i]!;
    let s = 0;
    for (let j = 0; j < nc; j++) s += rec.M[i * nc + j]! * a[j]!;
    aMa += a[i]! * s;
  }
  const chi2 = Math.max(0, rec.yWy - 2 * aB + aMa);
  const n = rec.n;
  const mean = n > 0 ? (rec.s1 - ga) / n : NaN;
  const v = n > 1 ? (chi2 - n * mean * mean) / (n - 1) : NaN;
  return { chi2, mean, std: Math.sqrt(Math.max(0, v)), n };
}

/** Sort and de-duplicate records from several sources (tiles): one record per id, ordered by id. */
export function mergeRecords(...lists: CandidateRecord[][]): CandidateRecord[] {
  const byId = new Map<number, CandidateRecord>();
  for (const list of lists) for (const r of list) if (!byId.has(r.id)) byId.set(r.id, r);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

interface State {
  rec: CandidateRecord;
  status: 'ok' | 'rejected';
  reason?: string;
  single?: Float64Array;
  kernelSum?: number;
  /** 1σ uncertainty of the single-kernel sum (from the fit's covariance, scaled by χ²/dof when > 1). */
  kernelSumErr?: number;
  mean?: number;
  std?: number;
}

/** Add λ·H (nb×nb, basis coordinates) to the kernel block of an nc×nc matrix. */
function addPenalty(A: Float64Array, nc: number, H: Float64Array | null, nb: number, lambda: number): void {
  if (!H || lambda === 0) return;
  for (let i = 0; i < nb; i++) for (let j = 0; j < nb; j++) A[i * nc + j]! += lambda * H[i * nb + j]!;
}

function singleFits(states: State[], nb: number, H: Float64Array | null, lambda: number, config: KernelConfig): void {
  for (const st of states) {
    if (st.status === 'rejected') continue;
    const r = st.rec;
    const A = Float64Array.from(r.M);
    addPenalty(A, r.nc, H, nb, lambda);
    const sol = solveWithVariance0(A, r.B, r.nc, config.maxConditionNumber);
    if (sol.rank === 0 || !sol.x.every(Number.isFinite)) {
      st.status = 'rejected';
      st.reason = 'singular';
      continue;
    }
    const s = residualStats(r, sol.x);
    st.single = sol.x;
    st.kernelSum = sol.x[0]!;
    const dof = Math.max(1, s.n - r.nc);
    st.kernelSumErr = Math.sqrt(Math.max(0, sol.var0) * Math.max(1, s.chi2 / dof));
    st.mean = s.mean;
    st.std = s.std;
    if (config.singleKernelClipping && (!(Math.abs(s.mean) <= config.candidateResidualMeanMax) || !(s.std <= config.candidateResidualStdMax))) {
      st.status = 'rejected';
      st.reason = 'single-kernel residual';
    }
  }
}

/**
 * Kernel-sum clipping. Each candidate's sum is compared with the (clipped, inverse-variance
 * weighted) mean in units of its own uncertainty, and the normalised deviations are judged by their
 * robust scatter: a bright variable star is caught at a few per cent, while faint constant stars,
 * whose sums are noisy, are not thrown away for their noise.
 */
function kernelSumClip(states: State[], config: KernelConfig): void {
  const ok = states.filter((s) => s.status === 'ok' && s.kernelSumErr! > 0 && Number.isFinite(s.kernelSumErr!));
  if (ok.length < 3) return;
  let centre = median(Float64Array.from(ok.map((s) => s.kernelSum!)));
  let scale = 1;
  let keep = ok;
  for (let it = 0; it < 10; it++) {
    const z = Float64Array.from(ok.map((s) => (s.kernelSum! - centre) / s.kernelSumErr!));
    scale = robustStd(z);
    if (!(scale > 0)) return;
    const next = ok.filter((_, i) => Math.abs(z[i]!) <= 3 * scale);
    let sw = 0;
    let swk = 0;
    for (const s of next) {
      const w = 1 / s.kernelSumErr! ** 2;
      sw += w;
      swk += w * s.kernelSum!;
    }
    const c = swk / sw;
    const done = next.length === keep.length && c === centre;
    keep = next;
    centre = c;
    if (done) break;
  }
  for (const s of ok) {
    if (Math.abs(s.kernelSum! - centre) / s.kernelSumErr! > config.maxKsumSigma * scale) {
      s.status = 'rejected';
      s.reason = 'kernel-sum outlier';
    }
  }
}

/** The candidates used for a spatial solve: the best nStarPerCell good ones per cell, ≤ maxCandidates, spread round-robin over cells. */
function activeSet(states: State[], config: KernelConfig): State[] {
  const cells = new Map<number, State[]>();
  for (const s of states) {
    if (s.status !== 'ok') continue;
    let list = cells.get(s.rec.cell);
    if (!list) cells.set(s.rec.cell, (list = []));
    list.push(s);
  }
  const perCell = [...cells.entries()].sort((a, b) => a[0] - b[0]).map(([, list]) =>
    list.sort((a, b) => b.rec.snr - a.rec.snr || a.rec.id - b.rec.id).slice(0, config.nStarPerCell));
  const out: State[] = [];
  for (let rank = 0; rank < config.nStarPerCell && out.length < config.maxCandidates; rank++) {
    const round = perCell.map((l) => l[rank]).filter((s): s is State => s !== undefined)
      .sort((a, b) => b.rec.snr - a.rec.snr || a.rec.id - b.rec.id);
    for (const s of round) {
      if (out.length >= config.maxCandidates) break;
      out.push(s);
    }
  }
  return out;
}

/**
 * Where each local column of a record lands in the global vector θ: column i covers
 * θ[offset[i] … offset[i] + terms(i).length) with weights terms(i) — [1] for the constant kernel 0,
 * the kernel spatial terms f(x, y) for kernels ≥ 1, the background terms for the background column.
 */
interface Layout {
  nb: number;
  ns: number;
  nbg: number;
  n: number;
  offset: Int32Array;
  kEval: (x: number, y: number, out?: Float64Array) => Float64Array;
  bgEval: ((x: number, y: number, out?: Float64Array) => Float64Array) | null;
}

function layoutFor(nb: number, kOrder: number, bgOrder: number, fitBg: boolean, config: KernelConfig, domain: SpatialDomain): Layout {
  const ns = nSpatialTerms(kOrder);
  const nbg = fitBg ? nSpatialTerms(bgOrder) : 0;
  const offset = new Int32Array(nb + (fitBg ? 1 : 0));
  for (let i = 1; i < nb; i++) offset[i] = 1 + (i - 1) * ns;
  if (fitBg) offset[nb] = 1 + (nb - 1) * ns;
  return {
    nb, ns, nbg, offset,
    n: 1 + (nb - 1) * ns + nbg,
    kEval: spatialEvaluator(config.spatialModelType, kOrder, domain),
    bgEval: fitBg ? spatialEvaluator(config.spatialModelType, bgOrder, domain) : null,
  };
}

const ONE = Float64Array.of(1);

/** The weights of each local column at a record's centre (see Layout). */
function columnTerms(L: Layout, rec: CandidateRecord): Float64Array[] {
  const f = L.kEval(rec.cx, rec.cy);
  const terms: Float64Array[] = [ONE];
  for (let i = 1; i < L.nb; i++) terms.push(f);
  if (L.bgEval) terms.push(L.bgEval(rec.cx, rec.cy));
  return terms;
}

/** Local coefficients (length nc) of a record at its centre from the global vector θ. */
function localCoefficients(L: Layout, rec: CandidateRecord, theta: Float64Array): Float64Array {
  const terms = columnTerms(L, rec);
  const a = new Float64Array(rec.nc);
  for (let i = 0; i < rec.nc; i++) {
    const t = terms[i]!;
    const o = L.offset[i]!;
    let s = 0;
    for (let p = 0; p < t.length; p++) s += theta[o + p]! * t[p]!;
    a[i] = s;
  }
  return a;
}

function spatialSolve(L: Layout, active: State[], H: Float64Array | null, lambda: number, config: KernelConfig): SolveResult {
  const N = L.n;
  const A = new Float64Array(N * N);
  const rhs = new Float64Array(N);
  // Σ_c P_cᵀ M_c P_c and Σ_c P_cᵀ B_c, upper triangle of each record's M mirrored.
  for (const st of active) {
    const r = st.rec;
    const nc = r.nc;
    const terms = columnTerms(L, r);
    for (let i = 0; i < nc; i++) {
      const ti = terms[i]!;
      const oi = L.offset[i]!;
      const bi = r.B[i]!;
      for (let p = 0; p < ti.length; p++) rhs[oi + p]! += bi * ti[p]!;
      for (let j = i; j < nc; j++) {
        const m = r.M[i * nc + j]!;
        if (m === 0) continue;
        const tj = terms[j]!;
        const oj = L.offset[j]!;
        for (let p = 0; p < ti.length; p++) {
          const mf = m * ti[p]!;
          const row = (oi + p) * N + oj;
          for (let q = 0; q < tj.length; q++) A[row + q]! += mf * tj[q]!;
          if (j !== i) for (let q = 0; q < tj.length; q++) A[(oj + q) * N + oi + p]! += mf * tj[q]!;
        }
      }
    }
  }
  // Regularise the kernel image of each spatial term (kernel 0 belongs to the constant term only).
  if (H && lambda > 0) {
    const scale = lambda * active.length;
    for (let s = 0; s < L.ns; s++) {
      const idx = (k: number) => (k === 0 ? (s === 0 ? 0 : -1) : L.offset[k]! + s);
      for (let a = 0; a < L.nb; a++) {
        const ia = idx(a);
        if (ia < 0) continue;
        for (let b = 0; b < L.nb; b++) {
          const ib = idx(b);
          if (ib < 0) continue;
          A[ia * N + ib]! += scale * H[a * L.nb + b]!;
        }
      }
    }
  }
  return solveSymmetric(A, rhs, N, config.maxConditionNumber);
}

function lambdaFor(config: KernelConfig, H: Float64Array | null, records: CandidateRecord[], nb: number): number {
  if (!H) return 0;
  if (config.lambdaType === 'absolute') return config.lambdaValue;
  // relative: λ = lambdaScaling × tr(M)/tr(H), M averaged over candidates (N.R. 18.5.8).
  let trH = 0;
  for (let i = 0; i < nb; i++) trH += H[i * nb + i]!;
  let trM = 0;
  for (const r of records) for (let i = 0; i < nb; i++) trM += r.M[i * r.nc + i]!;
  trM /= Math.max(1, records.length);
  return trH > 0 ? (config.lambdaScaling * trM) / trH : 0;
}

/** Solve for the spatially varying kernel from candidate records. */
export function solveKernel(records: CandidateRecord[], ctx: SolveContext): KernelSolution {
  const { config, domain } = ctx;
  let basis = ctx.basis;
  let nb = basisCount(basis);
  const fitBg = config.fitForBackground;
  const warnings: string[] = [];
  for (const r of records) {
    if (r.nc !== nb + (fitBg ? 1 : 0)) throw new KernelError('BAD_INPUT', `candidate ${r.id} has ${r.nc} columns, expected ${nb + (fitBg ? 1 : 0)} for this basis`);
  }
  // Per-cell truncation makes the set independent of how the image was split into tiles.
  const states: State[] = truncateCells(mergeRecords(records), config, domain).map((rec) => ({ rec, status: 'ok' as const }));
  const tooFew = (stage: string, have: number): never => {
    const rejected: Record<string, number> = {};
    for (const s of states) if (s.status === 'rejected') rejected[s.reason!] = (rejected[s.reason!] ?? 0) + 1;
    throw new KernelError('TOO_FEW_CANDIDATES', `${stage}: ${have} usable kernel candidate(s), at least ${config.minCandidates} needed`, {
      ...ctx.selectionCounts,
      records: states.length,
      ...Object.fromEntries(Object.entries(rejected).map(([k, v]) => [`rejected ${k}`, v])),
      usable: have,
      needed: config.minCandidates,
    });
  };
  if (states.length < config.minCandidates) tooFew('before fitting', states.length);

  const useReg = config.useRegularization;
  let H = useReg ? regularizationMatrix(basis, { type: config.regularizationType, stencil: config.centralRegularizationStencil, orders: config.forwardRegularizationOrders, borderPenalty: config.regularizationBorderPenalty }) : null;
  const lambda = lambdaFor(config, H, states.map((s) => s.rec), nb);

  singleFits(states, nb, H, lambda, config);
  if (config.kernelSumClipping) kernelSumClip(states, config);
  let nGood = states.filter((s) => s.status === 'ok').length;
  if (nGood < config.minCandidates) tooFew('after single-kernel and kernel-sum clipping', nGood);

  // Kernel-sum spread and single fits are reported in the original basis.
  const singleReports = new Map<number, { kernelSum?: number; kernelSumErr?: number; mean?: number; std?: number }>();
  for (const s of states) singleReports.set(s.rec.id, { kernelSum: s.kernelSum, kernelSumErr: s.kernelSumErr, mean: s.mean, std: s.std });

  if (config.usePcaForSpatialKernel) {
    const images = basisImages(basis);
    const np = basis.size * basis.size;
    const pcaSet = activeSet(states, config);
    const kernels = pcaSet.map((s) => {
      const k = new Float64Array(np);
      for (let i = 0; i < nb; i++) {
        const a = s.single![i]!;
        const img = images[i]!;
        for (let p = 0; p < np; p++) k[p]! += a * img[p]!;
      }
      const sum = s.single![0]!;
      for (let p = 0; p < np; p++) k[p]! /= sum;
      return k;
    });
    // The mean of the single kernels is noisy (each is fitted to one stamp barely larger than the
    // kernel, and all count alike), and the spatial fit takes the mean with a constant coefficient
    // (it carries the kernel sum), so that noise stays in the kernel and biases the sum: on core/sim
    // 512² pairs (FWHM 3.0 → 4.5, ×1.10) the sum came out 0.2–1.2 % low and the background high
    // (source-free mean z −0.05 … −0.16). The regularised joint fit of one kernel to all these
    // candidates (what the spatial solve gives at order 0) is a low-noise estimate of the mean
    // shape; adding it to the basis (as anchor − mean) restores the sum (within 0.1 %) and
    // mean z ≈ 0, and halves the data-space kernel error on a spatially varying pair.
    let anchor: Float64Array | undefined;
    let bgOrder0 = config.spatialBgOrder;
    while (fitBg && bgOrder0 > 0 && nSpatialTerms(bgOrder0) > pcaSet.length) bgOrder0--;
    const joint = spatialSolve(layoutFor(nb, 0, bgOrder0, fitBg, config, domain), pcaSet, H, lambda, config);
    if (joint.rank > 0 && joint.x.every(Number.isFinite) && joint.x[0]! !== 0) {
      anchor = new Float64Array(np);
      for (let i = 0; i < nb; i++) {
        const a = joint.x[i]!;
        if (a === 0) continue;
        const img = images[i]!;
        for (let p = 0; p < np; p++) anchor[p]! += a * img[p]!;
      }
    }
    const pcs = pcaImages(kernels, config.numPrincipalComponents, anchor);
    const T = basisTransform(images, pcs);
    const newBasis: BasisSpec = { type: 'images', size: basis.size, images: pcs.map((p) => Array.from(p)) };
    const nbNew = pcs.length;
    for (const s of states) s.rec = transformRecord(s.rec, T, nb, nbNew, fitBg);
    basis = newBasis;
    nb = nbNew;
    H = null;
    // Re-fit single kernels in the compressed basis (cheap) and re-clip, as ip_diffim does.
    singleFits(states, nb, null, 0, config);
    nGood = states.filter((s) => s.status === 'ok').length;
    if (nGood < config.minCandidates) tooFew('after PCA re-fit', nGood);
  }

  let solve: SolveResult | null = null;
  let layout: Layout | null = null;
  let active: State[] = [];
  let iterations = 0;
  let kOrder = config.spatialKernelOrder;
  let bgOrder = config.spatialBgOrder;
  for (let iter = 1; iter <= config.maxSpatialIterations; iter++) {
    active = activeSet(states, config);
    if (active.length < config.minCandidates) tooFew(`spatial iteration ${iter}`, active.length);
    // Under-constrained: fewer candidates than spatial terms cannot pin a spatial function.
    while (kOrder > 0 && nSpatialTerms(kOrder) > active.length) kOrder--;
    while (fitBg && bgOrder > 0 && nSpatialTerms(bgOrder) > active.length) bgOrder--;
    layout = layoutFor(nb, kOrder, bgOrder, fitBg, config, domain);
    solve = spatialSolve(layout, active, H, lambda, config);
    iterations = iter;
    if (!solve.x.every(Number.isFinite) || solve.rank === 0) {
      throw new KernelError('SINGULAR', 'the spatial normal equations carry no information (blank or constant images?)', { candidates: active.length, unknowns: layout.n });
    }
    if (!config.spatialKernelClipping || iter === config.maxSpatialIterations) break;
    let clipped = 0;
    for (const st of active) {
      const s = residualStats(st.rec, localCoefficients(layout, st.rec, solve.x));
      if (!(Math.abs(s.mean) <= config.candidateResidualMeanMax) || !(s.std <= config.candidateResidualStdMax)) {
        st.status = 'rejected';
        st.reason = 'spatial residual';
        clipped++;
      }
    }
    if (clipped === 0) break;
  }
  if (kOrder !== config.spatialKernelOrder) warnings.push(`spatialKernelOrder lowered from ${config.spatialKernelOrder} to ${kOrder}: only ${active.length} candidates for ${nSpatialTerms(config.spatialKernelOrder)} spatial terms`);
  if (fitBg && bgOrder !== config.spatialBgOrder) warnings.push(`spatialBgOrder lowered from ${config.spatialBgOrder} to ${bgOrder}: only ${active.length} candidates for ${nSpatialTerms(config.spatialBgOrder)} background terms`);
  if (solve!.method !== 'cholesky') warnings.push(`spatial solve ill-conditioned (condition ${solve!.condition.toExponential(2)} > ${config.maxConditionNumber.toExponential(1)}): truncated eigen solve, rank ${solve!.rank} of ${layout!.n}`);

  const L = layout!;
  const theta = solve!.x;
  const kernelCoefficients: number[][] = [[theta[0]!]];
  for (let i = 1; i < nb; i++) kernelCoefficients.push(Array.from(theta.subarray(1 + (i - 1) * L.ns, 1 + i * L.ns)));
  const backgroundCoefficients = fitBg ? Array.from(theta.subarray(1 + (nb - 1) * L.ns, L.n)) : [];

  const usedIds = new Set(active.map((s) => s.rec.id));
  let chi2 = 0;
  let npix = 0;
  const rejected: Record<string, number> = {};
  const candidates: CandidateReport[] = states.map((s) => {
    const single = singleReports.get(s.rec.id)!;
    const rep: CandidateReport = {
      id: s.rec.id, x: s.rec.x, y: s.rec.y, snr: s.rec.snr, cell: s.rec.cell,
      status: s.status === 'rejected' ? 'rejected' : usedIds.has(s.rec.id) ? 'used' : 'unused',
    };
    if (s.reason) {
      rep.reason = s.reason;
      rejected[s.reason] = (rejected[s.reason] ?? 0) + 1;
    }
    if (single.kernelSum !== undefined) {
      rep.kernelSum = single.kernelSum;
      rep.kernelSumErr = single.kernelSumErr;
      rep.residualMean = single.mean;
      rep.residualStd = single.std;
    }
    if (rep.status === 'used') {
      const st = residualStats(s.rec, localCoefficients(L, s.rec, theta));
      rep.spatialMean = st.mean;
      rep.spatialStd = st.std;
      chi2 += st.chi2;
      npix += st.n;
    }
    return rep;
  });

  return {
    format: 'diffim-kernel-solution',
    version: 1,
    mode: ctx.mode,
    basis,
    basisMode: ctx.basisMode + (config.usePcaForSpatialKernel ? '+pca' : ''),
    spatial: { type: config.spatialModelType, kernelOrder: kOrder, bgOrder: fitBg ? bgOrder : 0, domain: { ...domain } },
    kernelCoefficients,
    backgroundCoefficients,
    kernelSum: theta[0]!,
    fwhm: { ...ctx.fwhm },
    refVarianceFactor: ctx.refVarianceFactor,
    candidates,
    qa: {
      kernelSum: theta[0]!,
      conditionNumber: solve!.condition,
      solveMethod: solve!.method,
      rank: solve!.rank,
      nUnknowns: L.n,
      nCandidates: states.length,
      nUsed: active.length,
      rejected,
      iterations,
      chi2PerDof: npix > L.n ? chi2 / (npix - L.n) : NaN,
      lambda,
      warnings,
    },
    config: { ...config },
  };
}
