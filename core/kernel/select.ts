/**
 * Kernel-candidate selection: which stars may constrain the matching kernel.
 *
 * A star qualifies when its S/N is in [candidateSnrMin, candidateSnrMax], it is unsaturated,
 * isolated (only with rejectBlendedCandidates), unresolved (not larger than the stellar locus), its stamp of 2·kernelSize+1 pixels lies
 * inside both images and the exposure, and no pixel of that stamp in either image carries a bad
 * mask plane. Cells of sizeCellX × sizeCellY are anchored to the whole exposure, so a tile of it
 * assigns the same cell to the same star; each cell keeps its best candidates by S/N (a reserve,
 * cellReserve(), from which spatial clipping draws replacements).
 */
import type { MaskedImage } from '../image/masked-image.ts';
import { maskOf } from '../image/mask.ts';
import { median, MAD_TO_SIGMA } from '../image/stats.ts';
import type { Star } from '../psf/index.ts';
import type { KernelConfig } from './config.ts';
import { type CandidateSite, stampHalfWidth, fitHalfWidth } from './record.ts';
import type { SpatialDomain } from './spatial.ts';

/**
 * Candidates kept per cell, as a multiple of nStarPerCell: one spare for every candidate the solve
 * uses. Every kept candidate costs a record (the bulk of fitKernel's time). Was 3; with 2, on the
 * 2048² core/sim pairs (7 of ~2500 rejected) kernel sum and shape errors are unchanged (seeds 1–3)
 * and records cost a third less. Where clipping draws deep it shows: the pydia pair (92 of 158
 * fail the single-kernel residual test) uses 55 stars instead of 76, robust std(z) 1.087 vs 1.086.
 */
export const RESERVE_PER_CELL = 2;

/**
 * Candidates kept per cell: RESERVE_PER_CELL × what the solve can use from a cell — nStarPerCell,
 * or fewer when maxCandidates spread over all the exposure's cells leaves less (4096² with 128-px
 * cells: 1000 over 1024 cells, one each). Depends only on the exposure's box and the config, so
 * every tile computes the same number.
 */
export function cellReserve(config: KernelConfig, domain: SpatialDomain): number {
  const nCells = Math.ceil(domain.width / config.sizeCellX) * Math.ceil(domain.height / config.sizeCellY);
  return RESERVE_PER_CELL * Math.min(config.nStarPerCell, Math.max(1, Math.ceil(config.maxCandidates / nCells)));
}

/**
 * Resolved: larger than median + 3σ (robust, ≥ 10 %) of the clean sizes (Infinity with fewer than
 * five). Deliberately looser than core/psf's stellarLocus (a pure-star sample for the PSF):
 * compact static galaxies constrain the kernel as well as stars do, and on the NIRCam pair the
 * tight locus left 12 of 118 candidates.
 */
export function resolvedFwhmLimit(stars: readonly Star[], config: KernelConfig): number {
  const sizes = stars.filter((s) => !s.flags.saturated && !s.flags.blended && !s.flags.badShape && Number.isFinite(s.fwhm) && s.snr >= config.candidateSnrMin).map((s) => s.fwhm);
  if (sizes.length < 5) return Infinity;
  const arr = Float64Array.from(sizes);
  const med = median(arr);
  const dev = Float64Array.from(sizes.map((s) => Math.abs(s - med)));
  const sig = MAD_TO_SIGMA * median(dev);
  return med + Math.max(3 * sig, 0.1 * med);
}

export interface SelectionResult {
  sites: CandidateSite[];
  /** How many stars were seen and why the others were turned away. */
  counts: Record<string, number>;
}

export function cellIndex(domain: SpatialDomain, config: KernelConfig, x: number, y: number): number {
  const nx = Math.ceil(domain.width / config.sizeCellX);
  const ix = Math.floor((x - domain.x0) / config.sizeCellX);
  const iy = Math.floor((y - domain.y0) / config.sizeCellY);
  return iy * nx + ix;
}

export function candidateId(domain: SpatialDomain, cx: number, cy: number): number {
  return (cy - domain.y0) * domain.width + (cx - domain.x0);
}

function stampClean(mi: MaskedImage, cx: number, cy: number, half: number, badBits: number, needVariance: boolean): boolean {
  const x0 = cx - half - mi.x0;
  const y0 = cy - half - mi.y0;
  const n = 2 * half + 1;
  for (let j = 0; j < n; j++) {
    const o = (y0 + j) * mi.width + x0;
    for (let i = 0; i < n; i++) {
      if ((mi.mask[o + i]! & badBits) !== 0) return false;
      if (!Number.isFinite(mi.image[o + i]!)) return false;
      if (needVariance) {
        const v = mi.variance[o + i]!;
        if (!(v > 0) || !Number.isFinite(v)) return false;
      }
    }
  }
  return true;
}

function inside(mi: MaskedImage, cx: number, cy: number, half: number): boolean {
  return cx - half >= mi.x0 && cy - half >= mi.y0 && cx + half < mi.x0 + mi.width && cy + half < mi.y0 + mi.height;
}

/**
 * Select candidate sites from `stars` (detected on the template). `core`, when given, keeps only
 * stars whose stamp centre lies in it (a tile's core), so tiles with overlap never double count.
 */
export function selectCandidates(
  stars: readonly Star[],
  template: MaskedImage,
  science: MaskedImage,
  kernelSize: number,
  domain: SpatialDomain,
  config: KernelConfig,
  core?: SpatialDomain,
  /** FWHM above which a star is resolved (default: from these stars; the tiled pipeline gives one for all tiles). */
  resolvedLimit?: number,
): SelectionResult {
  const counts: Record<string, number> = { stars: stars.length };
  const bump = (k: string) => { counts[k] = (counts[k] ?? 0) + 1; };
  const badBits = maskOf(...config.badMaskPlanes);
  const half = stampHalfWidth(kernelSize);
  const fh = fitHalfWidth(kernelSize);

  const maxFwhm = resolvedLimit ?? resolvedFwhmLimit(stars, config);

  const byCell = new Map<number, CandidateSite[]>();
  for (const s of stars) {
    const cx = Math.round(s.x);
    const cy = Math.round(s.y);
    if (core && (cx < core.x0 || cy < core.y0 || cx >= core.x0 + core.width || cy >= core.y0 + core.height)) { bump('outside core'); continue; }
    if (s.flags.saturated) { bump('saturated'); continue; }
    if (!(s.snr >= config.candidateSnrMin)) { bump('low S/N'); continue; }
    if (s.snr > config.candidateSnrMax) { bump('high S/N'); continue; }
    if (s.flags.blended && config.rejectBlendedCandidates) { bump('blended'); continue; }
    if (s.flags.badShape || !Number.isFinite(s.fwhm)) { bump('bad shape'); continue; }
    if (s.fwhm > maxFwhm) { bump('resolved'); continue; }
    const inDomain = cx - half >= domain.x0 && cy - half >= domain.y0 && cx + half < domain.x0 + domain.width && cy + half < domain.y0 + domain.height;
    if (s.flags.edge || !inDomain || !inside(template, cx, cy, half) || !inside(science, cx, cy, half)) { bump('edge'); continue; }
    if (s.flags.masked || !stampClean(template, cx, cy, half, badBits, false) || !stampClean(science, cx, cy, half, badBits, false)
      || !stampClean(science, cx, cy, fh, 0, true) || !stampClean(template, cx, cy, fh, 0, true)) { bump('masked'); continue; }
    const cell = cellIndex(domain, config, cx, cy);
    const site: CandidateSite = { id: candidateId(domain, cx, cy), x: s.x, y: s.y, cx, cy, snr: s.snr, flux: s.flux, cell };
    let list = byCell.get(cell);
    if (!list) byCell.set(cell, (list = []));
    list.push(site);
  }
  const reserve = cellReserve(config, domain);
  const sites: CandidateSite[] = [];
  const seen = new Set<number>();
  for (const [, list] of [...byCell.entries()].sort((a, b) => a[0] - b[0])) {
    list.sort((a, b) => b.snr - a.snr || a.id - b.id);
    let kept = 0;
    for (const site of list) {
      if (seen.has(site.id)) { bump('duplicate'); continue; }
      if (kept >= reserve) { bump('beyond cell reserve'); continue; }
      seen.add(site.id);
      sites.push(site);
      kept++;
    }
  }
  counts.selected = sites.length;
  return { sites, counts };
}

/** Keep each cell's best cellReserve() records (by S/N, then id): what a whole-image selection would keep. */
export function truncateCells<T extends { cell: number; snr: number; id: number }>(items: T[], config: KernelConfig, domain: SpatialDomain): T[] {
  const byCell = new Map<number, T[]>();
  for (const it of items) {
    let l = byCell.get(it.cell);
    if (!l) byCell.set(it.cell, (l = []));
    l.push(it);
  }
  const reserve = cellReserve(config, domain);
  const out: T[] = [];
  for (const l of byCell.values()) out.push(...l.sort((a, b) => b.snr - a.snr || a.id - b.id).slice(0, reserve));
  return out.sort((a, b) => a.id - b.id);
}
