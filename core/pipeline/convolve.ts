/**
 * convolve (one call per tile): read the tile's convolve box of both images and run the in-memory
 * subtraction on it with everything that must agree across tiles given (the shared solution,
 * decorrelation's σ², the PSF moments): convolution, difference, variance, masks, decorrelation,
 * detection. Keeps the core: its planes (big-endian, as the FITS file will hold them, with their
 * ones' complement sums so stitch can write CHECKSUM up front), the sources whose peak lies in it
 * (parent coordinates), and QA partials. Writes tiles/<tile>.planes and tiles/<tile>.json.
 */
import { encodePixels, Header } from '../fits/index.ts';
import { onesComplementSum } from '../fits/checksum.ts';
import { readExposureBox } from '../image/exposure-box.ts';
import { subImage } from '../image/masked-image.ts';
import { MASK_PLANES } from '../image/mask.ts';
import { containsPoint } from '../image/box.ts';
import { parseSolution } from '../kernel/index.ts';
import { parseWcs, type CelestialWcs, type DiaSource } from '../detect/index.ts';
import { subtract, prepareForConvolution } from '../subtract/subtract.ts';
import { computeQa, type SubtractQa } from '../subtract/qa.ts';
import type { FitDoc, TileArgs } from './fit.ts';
import type { SolveContextDoc } from './solve.ts';
import { getDoc, getSolutionText, locate, openInput, putDoc, readPlan, tileOf, under, type StepEnv } from './run.ts';
import { concatChunks } from '../storage/index.ts';

export interface TileDoc {
  tile: number;
  /** Ones' complement sums of the core's IMAGE, MASK and VARIANCE bytes. */
  dataSums: [number, number, number];
  sources: DiaSource[];
  qa: SubtractQa;
  /** Detection partials over the core (null without detection). */
  detection: null | {
    nFootprints: number;
    nRejectedPeak: number;
    /** Pixels of the core with each mask plane set. */
    maskCounts: Record<string, number>;
    pixels: number;
    background: { median: number; min: number; max: number };
    depth: { psfFluxErr: number; limitingFlux: number; limitingMagnitude: number | null };
  };
  timingsMs: Record<string, number>;
}

export interface ConvolveResult {
  tile: number;
  sources: number;
  bytes: number;
}

/** The science WCS over a tile's local pixels. */
function shifted(w: CelestialWcs | null, dx: number, dy: number): CelestialWcs | null {
  if (!w) return null;
  return { projection: w.projection, radesys: w.radesys, pixelToSky: (x, y) => w.pixelToSky(x + dx, y + dy) };
}

export async function convolveStep(args: TileArgs, env: StepEnv = {}): Promise<ConvolveResult> {
  const plan = await readPlan(args.work, env);
  const t = tileOf(plan, args.tile);
  const sol = parseSolution(await getSolutionText(args.work, env));
  const ctx = await getDoc<SolveContextDoc>(under(args.work, 'context.json'), 'the solve context', env);
  const fit = await getDoc<FitDoc>(under(args.work, 'fit', `${t.id}.json`), `the fit of tile ${t.id}`, env);
  const [rs, rt] = await Promise.all([openInput(plan.science.url, env), openInput(plan.template.url, env)]);
  let sci, tpl;
  try {
    sci = prepareForConvolution(await readExposureBox(rs, plan.science.layout, t.convolveBox));
    tpl = prepareForConvolution(await readExposureBox(rt, plan.template.layout, t.convolveBox));
  } finally {
    await Promise.all([rs.close(), rt.close()].map((p) => p.catch(() => undefined)));
  }
  const box = t.convolveBox;
  const ex = plan.exposure;
  const wcs = parseWcs(new Header(plan.scienceHeader));
  const cfg = plan.config;
  const r = subtract(sci, tpl, {
    solution: sol, decorrelate: cfg.decorrelate, inputVariances: ctx.inputVariances, psfMoments: ctx.psfMoments,
    templateStars: fit.templateStars, scienceStars: fit.scienceStars,
    detect: cfg.detect ?? false,
    wcs: shifted(wcs.wcs, box.x0 - ex.x0, box.y0 - ex.y0), exposureId: cfg.exposureId,
    ...(cfg.zeroPoint !== null ? { zeroPoint: cfg.zeroPoint } : {}),
  });
  const core = t.core;
  const diff = subImage(r.difference, core);
  const planes = [encodePixels(diff.image), encodePixels(diff.mask), encodePixels(diff.variance)];
  const dataSums = planes.map((p) => onesComplementSum(p)) as [number, number, number];
  const qa = computeQa({
    difference: diff, science: subImage(r.matchedScience, core), sol,
    templateStars: fit.templateStars, scienceStars: fit.scienceStars, decorrelation: r.decorrelation, timings: {},
  });
  const det = r.detection;
  // Sources (parent coordinates) belong to the tile whose core holds their peak.
  const sources = det ? det.sources.filter((s) => containsPoint(core, s.peakX, s.peakY)) : [];
  let detection: TileDoc['detection'] = null;
  if (det) {
    const maskCounts: Record<string, number> = {};
    for (const [name, bit] of Object.entries(MASK_PLANES)) {
      let c = 0;
      for (let i = 0; i < diff.mask.length; i++) if ((diff.mask[i]! & bit) !== 0) c++;
      maskCounts[name] = c;
    }
    let lo = Infinity;
    let hi = -Infinity;
    const bg = det.background;
    for (let y = core.y0 - box.y0; y < core.y0 - box.y0 + core.height; y++) {
      for (let x = core.x0 - box.x0, o = y * box.width; x < core.x0 - box.x0 + core.width; x++) {
        const v = bg[o + x]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    detection = {
      nFootprints: det.qa.nFootprints, nRejectedPeak: det.qa.nRejectedPeak, maskCounts, pixels: diff.mask.length,
      background: { median: det.qa.background.median, min: lo, max: hi }, depth: det.qa.depth,
    };
  }
  const { storage, key } = locate(under(args.work, 'tiles', `${t.id}.planes`), env);
  const bytes = concatChunks(planes);
  await storage.put(key, bytes);
  await putDoc(under(args.work, 'tiles', `${t.id}.json`), { tile: t.id, dataSums, sources, qa, detection, timingsMs: r.qa.timingsMs } satisfies TileDoc, env);
  return { tile: t.id, sources: sources.length, bytes: bytes.length };
}
