/**
 * fit (one call per tile): read the tile's fit box of both images, find stars (with the plan's FWHM
 * guesses, so every tile finds them alike), select the kernel candidates whose stamp centre lies
 * in the core (cells are anchored to the exposure, so a cell is never split), and build their
 * records (normal equations + residual statistics). Also keeps the core's lattice samples of both
 * variance planes (decorrelation's σ²) and the stars (PSF moments, QA). Writes fit/<tile>.json.
 */
import { readExposureBox } from '../image/exposure-box.ts';
import { findStars, type Star } from '../psf/index.ts';
import { buildRecords, selectCandidates, type CandidateRecord } from '../kernel/index.ts';
import { prepareForConvolution } from '../subtract/subtract.ts';
import { varianceSamples, type VarianceSamples } from '../subtract/variance-level.ts';
import { openInput, putDoc, readPlan, tileOf, under, type StepEnv } from './run.ts';

export interface TileArgs {
  work: string;
  tile: number;
}

export interface FitDoc {
  tile: number;
  records: CandidateRecord[];
  counts: Record<string, number>;
  /** Stars found in the fit box (parent coordinates). */
  templateStars: Star[];
  scienceStars: Star[];
  samples: VarianceSamples;
}

export interface FitResult {
  tile: number;
  candidates: number;
  bytes: number;
}

export async function fitStep(args: TileArgs, env: StepEnv = {}): Promise<FitResult> {
  const plan = await readPlan(args.work, env);
  const t = tileOf(plan, args.tile);
  const [rs, rt] = await Promise.all([openInput(plan.science.url, env), openInput(plan.template.url, env)]);
  try {
    const sci = prepareForConvolution(await readExposureBox(rs, plan.science.layout, t.fitBox));
    const tpl = prepareForConvolution(await readExposureBox(rt, plan.template.layout, t.fitBox));
    const templateStars = findStars(tpl, { fwhmGuess: plan.fit.fwhm.template });
    const scienceStars = findStars(sci, { fwhmGuess: plan.fit.fwhm.science });
    const sel = selectCandidates(templateStars, tpl, sci, plan.fit.basis.size, plan.exposure, plan.fit.config, t.core, plan.resolvedFwhmLimit);
    const records = buildRecords(plan.fit, sci, tpl, sel.sites);
    const doc: FitDoc = { tile: t.id, records, counts: sel.counts, templateStars, scienceStars, samples: varianceSamples(sci, tpl, plan.exposure, t.core) };
    const bytes = await putDoc(under(args.work, 'fit', `${t.id}.json`), doc, env);
    return { tile: t.id, candidates: records.length, bytes };
  } finally {
    await Promise.all([rs.close(), rt.close()].map((p) => p.catch(() => undefined)));
  }
}
