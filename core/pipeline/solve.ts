/**
 * solve (one call): merge every tile's candidate records into the one spatial kernel solution
 * (clipping loops of core/kernel/solve.ts), and the quantities that must be the same in every
 * tile: decorrelation's two σ² (from all tiles' lattice samples) and the PSF moments used for
 * detection (from the stars of all cores). Writes solution.json and context.json.
 */
import { KernelError, mergeRecords, serializeSolution, solveKernel } from '../kernel/index.ts';
import type { Star } from '../psf/index.ts';
import { starMoments, type PsfMoments } from '../subtract/subtract.ts';
import { levelsOf } from '../subtract/variance-level.ts';
import { containsPoint } from '../image/box.ts';
import type { FitDoc } from './fit.ts';
import { getDoc, locate, putDoc, readPlan, under, type StepEnv } from './run.ts';

export interface SolveContextDoc {
  inputVariances: { science: number; template: number };
  psfMoments: { template: PsfMoments | null; science: PsfMoments | null };
}

export interface SolveResult {
  used: number;
  total: number;
  kernelSum: number;
}

/** Stars whose position lies in their tile's core, in the star finder's order (S/N, then position). */
function coreStars(docs: FitDoc[], cores: Map<number, { x0: number; y0: number; width: number; height: number }>, which: 'templateStars' | 'scienceStars'): Star[] {
  const out: Star[] = [];
  for (const d of docs) {
    const core = cores.get(d.tile)!;
    for (const s of d[which]) if (containsPoint(core, Math.round(s.x), Math.round(s.y))) out.push(s);
  }
  const key = (s: Star) => (Number.isNaN(s.snr) ? -Infinity : s.snr);
  return out.sort((a, b) => key(b) - key(a) || a.y - b.y || a.x - b.x);
}

export async function solveStep(args: { work: string }, env: StepEnv = {}): Promise<SolveResult> {
  const plan = await readPlan(args.work, env);
  const docs: FitDoc[] = [];
  for (const t of plan.tiles) docs.push(await getDoc<FitDoc>(under(args.work, 'fit', `${t.id}.json`), `the fit of tile ${t.id}`, env));
  const counts: Record<string, number> = {};
  for (const d of docs) for (const [k, v] of Object.entries(d.counts)) counts[k] = (counts[k] ?? 0) + v;
  const records = mergeRecords(...docs.map((d) => d.records));
  const cores = new Map(plan.tiles.map((t) => [t.id, t.core] as const));
  const tStars = coreStars(docs, cores, 'templateStars');
  if (tStars.length === 0) throw new KernelError('NO_STARS', 'no stars detected in the template', { stars: 0 });
  if (records.length < plan.fit.config.minCandidates) {
    throw new KernelError('TOO_FEW_CANDIDATES', `only ${records.length} kernel candidate(s) pass selection, at least ${plan.fit.config.minCandidates} needed`, counts);
  }
  const sol = solveKernel(records, { ...plan.fit, selectionCounts: counts });
  const context: SolveContextDoc = {
    inputVariances: levelsOf(docs.map((d) => d.samples)),
    psfMoments: { template: starMoments(tStars), science: starMoments(coreStars(docs, cores, 'scienceStars')) },
  };
  const { storage, key } = locate(under(args.work, 'solution.json'), env);
  await storage.put(key, new TextEncoder().encode(serializeSolution(sol) + '\n'));
  await putDoc(under(args.work, 'context.json'), context, env);
  return { used: sol.qa.nUsed, total: sol.qa.nCandidates, kernelSum: sol.kernelSum };
}
