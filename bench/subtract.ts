/**
 * Subtraction benchmark (issue 4): core/sim pairs of 2048² and 4096² (template FWHM 3.0, science
 * 4.5, ×1.10 — METRICS.md's recipe), written as FITS, then the whole path read → subtract → write
 * in a child process (wall time, peak RSS, Mpx/s per phase). Also the fast engine's error against
 * the exact per-pixel reference on a 256² cut-out with the fitted kernel.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { simulatePair } from '../core/sim/index.ts';
import { writeExposure } from '../core/image/exposure.ts';
import { subImage } from '../core/image/masked-image.ts';
import { box } from '../core/image/box.ts';
import { convolveReference } from '../core/convolve/reference.ts';
import { convolveSpatial, spatialKernelOf } from '../core/convolve/spatial.ts';
import { fitKernel } from '../core/kernel/index.ts';
import type { Figure } from './fits.ts';

const TARGET_MS: Record<number, number> = { 2048: 1500, 4096: 5000 };
const HOTPANTS_MS: Record<number, number> = { 2048: 5000, 4096: 21000 };

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchSubtract(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(os.tmpdir(), 'diffim-bench-'));
  const figures: Figure[] = [];
  const runsOut: Record<string, unknown> = {};
  let fastVsExact: Record<string, number> = {};
  try {
    for (const W of [2048, 4096]) {
      const sim = simulatePair({
        width: W, height: W, seed: 1, nStars: Math.round((1300 * W * W) / 1024 ** 2), starFlux: { min: 3e3, max: 4e5, slope: 1.5 },
        template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, gain: 1, readNoise: 5 },
        science: { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.1, sky: { level: 300 }, gain: 1, readNoise: 5 },
      });
      const sci = join(dir, `sci${W}.fits`);
      const tpl = join(dir, `tpl${W}.fits`);
      await writeExposure(sci, sim.science);
      await writeExposure(tpl, sim.template);
      if (W === 2048) {
        const sol = fitKernel(sim.science, sim.template);
        const cut = subImage(sim.template, box(900, 900, 256, 256));
        const exact = convolveReference(cut, sol);
        const fast = convolveSpatial(cut, spatialKernelOf(sol));
        let maxAbs = 0;
        let maxRel = 0;
        for (let i = 0; i < exact.image.length; i++) {
          if (exact.mask[i]! & (1 << 4)) continue;
          const d = Math.abs(fast.image[i]! - exact.image[i]!);
          maxAbs = Math.max(maxAbs, d);
          maxRel = Math.max(maxRel, d / Math.max(1e-30, Math.abs(exact.image[i]!)));
        }
        fastVsExact = { maxAbsDiff: maxAbs, maxRelDiff: maxRel };
      }
      const runs: Array<Record<string, any>> = [];
      for (let r = 0; r < 3; r++) {
        const out = execFileSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'subtract-run.ts'), sci, tpl, join(dir, `diff${W}.fits`)], { encoding: 'utf8', maxBuffer: 1 << 24 });
        runs.push(JSON.parse(out.trim().split('\n').pop()!));
      }
      const totals = runs.map((r) => r.total_ms as number);
      const med = runs.find((r) => r.total_ms === median(totals))!;
      const mpx = (W * W) / 1e6;
      figures.push({
        name: `${W}² read → subtract → write (default preset, decorrelated)`, ms: median(totals), runs: runs.length, all_ms: totals,
        target_ms: TARGET_MS[W], pass: median(totals) <= TARGET_MS[W]!,
        note: `peak RSS ${Math.round(med.maxRSS_MB)} MB; HOTPANTS ${HOTPANTS_MS[W]! / 1000} s`,
      });
      runsOut[`${W}`] = {
        medianRun: med,
        mpxPerSecond: Object.fromEntries(Object.entries({ read: med.read_ms, ...med.phases_ms, write: med.write_ms, total: med.total_ms }).map(([k, v]) => [k, Math.round((mpx / ((v as number) / 1000)) * 10) / 10])),
        speedupVsHotpants: Math.round((HOTPANTS_MS[W]! / med.total_ms) * 100) / 100,
      };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    input: 'core/sim pairs 2048² and 4096², 1300 stars/Mpx, template FWHM 3.0, science 4.5, flux ×1.10, seed 1; float32 MEF files',
    node: process.version,
    cores: os.availableParallelism(),
    fastVsExact256: fastVsExact,
    runs: runsOut,
    figures,
  };
}
