/**
 * Kernel-solution benchmark (issue 3): building the records of 1000 candidates for the 27-kernel
 * Alard–Lupton basis and solving the spatial system (spatial order 2, background order 1), one
 * thread, on a core/sim 2048² pair (template FWHM 3.0, science 4.5, ×1.10). Also the whole
 * fitKernel on that pair (PSF measurement, star finding, selection, records, solve), and its
 * phases timed one by one (fitKernel's own steps, repeated here).
 *
 * Times are wall-clock medians; each note also gives the median CPU time of this process, which a
 * busy shared machine inflates less (the work is single-threaded, so the two agree when idle).
 */
import { simulatePair } from '../core/sim/index.ts';
import { buildRecords, fitKernel, measureShape, planFit, resolveKernelConfig, selectCandidates, solveKernel } from '../core/kernel/index.ts';
import { findStars, measurePsf } from '../core/psf/index.ts';
import type { Figure } from './fits.ts';

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function timeSync<T>(runs: number, fn: () => T): { ms: number; all: number[]; cpu: number; last: T } {
  let last = fn(); // warm-up: V8 tiers up the hot loops
  const all: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = cpuMs();
    const t0 = performance.now();
    last = fn();
    all.push(performance.now() - t0);
    cpu.push(cpuMs() - c0);
  }
  return { ms: median(all), all, cpu: median(cpu), last };
}

const cpuNote = (t: { cpu: number }, extra?: string) => `cpu ${t.cpu.toFixed(0)} ms${extra ? `; ${extra}` : ''}`;

export async function benchKernel(): Promise<Record<string, unknown>> {
  const W = 2048;
  const sim = simulatePair({
    width: W, height: W, seed: 1, nStars: 6000, starFlux: { min: 3e3, max: 4e5, slope: 1.5 },
    template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, gain: 1, readNoise: 5 },
    science: { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.1, sky: { level: 300 }, gain: 1, readNoise: 5 },
  });
  const config = resolveKernelConfig('default', { spatialKernelOrder: 2, spatialBgOrder: 1, nStarPerCell: 5, maxCandidates: 1000 });
  const domain = { x0: 0, y0: 0, width: W, height: W };
  const stars = findStars(sim.template);
  const plan = planFit(config, domain, measurePsf(sim.template), measurePsf(sim.science));
  const sel = selectCandidates(stars, sim.template, sim.science, plan.basis.size, domain, config);
  // 1000 sites spread over the cells (each cell's best first), all of which the solver may use.
  const byRank = [...sel.sites].sort((a, b) => a.cell - b.cell || b.snr - a.snr);
  const rank = new Map<number, number>();
  const counter = new Map<number, number>();
  for (const s of byRank) { const r = counter.get(s.cell) ?? 0; counter.set(s.cell, r + 1); rank.set(s.id, r); }
  const sites = [...sel.sites].sort((a, b) => rank.get(a.id)! - rank.get(b.id)! || a.id - b.id).slice(0, 1000);
  if (sites.length < 1000) throw new Error(`bench needs 1000 candidate sites, selection gave ${sites.length}`);
  const cfg1000 = { ...config, nStarPerCell: 1000 };

  const build = timeSync(5, () => buildRecords(plan, sim.science, sim.template, sites));
  const records = build.last;
  const solve = timeSync(5, () => solveKernel(records, { ...plan, config: cfg1000 }));
  const both = timeSync(5, () => solveKernel(buildRecords(plan, sim.science, sim.template, sites), { ...plan, config: cfg1000 }));
  const fit = timeSync(3, () => fitKernel(sim.science, sim.template));
  // fitKernel's phases, its steps repeated one by one (default preset, as fitKernel runs them).
  const fitConfig = resolveKernelConfig('default', {});
  const starsT = timeSync(3, () => findStars(sim.template));
  const starsS = timeSync(3, () => findStars(sim.science));
  const fitPlan = planFit(fitConfig, domain, measureShape(starsT.last, 'template'), measureShape(starsS.last, 'science'));
  const fitSel = timeSync(3, () => selectCandidates(starsT.last, sim.template, sim.science, fitPlan.basis.size, domain, fitConfig));
  const nSel = fitSel.last.sites.length;
  const fitBuild = timeSync(3, () => buildRecords(fitPlan, sim.science, sim.template, fitSel.last.sites));
  const fitSolve = timeSync(3, () => solveKernel(fitBuild.last, { ...fitPlan, selectionCounts: fitSel.last.counts }));
  const sol = both.last;
  const phase = (name: string, t: { ms: number; all: number[]; cpu: number }, extra?: string): Figure =>
    ({ name: `  fitKernel phase: ${name}`, ms: t.ms, runs: t.all.length, all_ms: t.all, note: cpuNote(t, extra) });
  const figures: Figure[] = [
    { name: 'build 1000 records (27 kernels, 21×21, 23×23 fit region)', ms: build.ms, runs: build.all.length, all_ms: build.all, note: cpuNote(build) },
    { name: 'solve (single fits, clipping, spatial order 2 + bg order 1)', ms: solve.ms, runs: solve.all.length, all_ms: solve.all, note: cpuNote(solve) },
    { name: 'build + solve, 1000 candidates', ms: both.ms, runs: both.all.length, all_ms: both.all, target_ms: 1000, pass: both.ms <= 1000, note: cpuNote(both) },
    { name: 'fitKernel 2048² pair (default preset, end to end)', ms: fit.ms, runs: fit.all.length, all_ms: fit.all, note: cpuNote(fit, `${fit.last.qa.nUsed} used of ${fit.last.qa.nCandidates}`) },
    phase('findStars template', starsT, `${starsT.last.length} stars`),
    phase('findStars science', starsS, `${starsS.last.length} stars`),
    phase('selectCandidates', fitSel, `${nSel} sites`),
    phase(`build ${nSel} records`, fitBuild),
    phase('solve', fitSolve),
  ];
  return {
    input: 'core/sim 2048² pair, 6000 stars, template FWHM 3.0, science 4.5, flux ×1.10, seed 1',
    basis: sol.basis,
    unknowns: sol.qa.nUnknowns,
    used: sol.qa.nUsed,
    kernelSum: sol.kernelSum,
    conditionNumber: sol.qa.conditionNumber,
    node: process.version,
    figures,
  };
}
