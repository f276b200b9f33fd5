/**
 * The tiled pipeline end to end (read → plan → fit → solve → convolve → stitch → write, DIA
 * detection on) on core/sim pairs written as LSST exposures: 4096² with 1 and 2 workers (the
 * speed-up), and 8192² (peak RSS against 4096²: memory is bounded by the tile, not the exposure).
 * Each run is a child process; pairs are cached under tmp/bench-pairs/ (gitignored).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { simulatePair } from '../core/sim/index.ts';
import { writeExposure } from '../core/image/exposure.ts';

const ROOT = join(import.meta.dirname, '..');
const DIR = join(ROOT, 'tmp', 'bench-pairs');

async function pair(n: number): Promise<[string, string]> {
  const s = join(DIR, `sci${n}.fits`);
  const t = join(DIR, `tpl${n}.fits`);
  if (existsSync(s) && existsSync(t)) return [s, t];
  mkdirSync(DIR, { recursive: true });
  const sim = simulatePair({
    width: n, height: n, seed: 1, nStars: Math.round((1300 * n * n) / 1024 ** 2), starFlux: { min: 3e3, max: 4e5, slope: 1.5 },
    template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, gain: 1, readNoise: 5 },
    science: { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.1, sky: { level: 300 }, gain: 1, readNoise: 5 },
    transients: { count: Math.round((40 * n * n) / 4096 ** 2) },
  });
  await writeExposure(s, sim.science);
  await writeExposure(t, sim.template);
  return [s, t];
}

interface RunFigure { wallMs: number; timingsMs: Record<string, number>; tiles: number; workers: number; peakRssMb: number; kernelSum: number }

function runOnce(sci: string, tpl: string, tile: number, workers: number): RunFigure {
  const out = join(DIR, `out-${tile}-${workers}`);
  rmSync(out, { recursive: true, force: true });
  const line = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'pipeline-run.ts'), sci, tpl, out, String(tile), String(workers)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  rmSync(out, { recursive: true, force: true });
  return JSON.parse(line.trim().split('\n').pop()!) as RunFigure;
}

export async function benchPipeline(): Promise<Record<string, unknown>> {
  const tile = 2048;
  const [s4, t4] = await pair(4096);
  const one = runOnce(s4, t4, tile, 1);
  const two = runOnce(s4, t4, tile, 2);
  const [s8, t8] = await pair(8192);
  const big = runOnce(s8, t8, tile, 2);
  const r = (x: number) => Math.round(x);
  return {
    machine: '2 cores; each run a fresh process; DIA detection on; decorrelation on',
    tileSize: tile,
    '4096² 1 worker': { wallMs: r(one.wallMs), phasesMs: Object.fromEntries(Object.entries(one.timingsMs).map(([k, v]) => [k, r(v)])), peakRssMb: r(one.peakRssMb) },
    '4096² 2 workers': { wallMs: r(two.wallMs), phasesMs: Object.fromEntries(Object.entries(two.timingsMs).map(([k, v]) => [k, r(v)])), peakRssMb: r(two.peakRssMb) },
    speedup2Workers: Number((one.wallMs / two.wallMs).toFixed(2)),
    '8192² 2 workers': { wallMs: r(big.wallMs), phasesMs: Object.fromEntries(Object.entries(big.timingsMs).map(([k, v]) => [k, r(v)])), peakRssMb: r(big.peakRssMb) },
    rssRatio8192To4096: Number((big.peakRssMb / two.peakRssMb).toFixed(2)),
    hotpants4096Ms: 21000,
  };
}
