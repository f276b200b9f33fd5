/**
 * One engine run in its own process (so its peak RSS is its own): args science template out
 * tileSize workers. Prints one JSON line: phase times, wall time, peak RSS (the process's, all
 * threads included).
 */
import { runPipeline } from '../core/engine/engine.ts';

const [science, template, out, tile, workers] = process.argv.slice(2);
const t0 = performance.now();
const r = await runPipeline({ science: science!, template: template!, out: out!, options: { tileSize: Number(tile) } }, { workers: Number(workers) });
const wallMs = performance.now() - t0;
console.log(JSON.stringify({ wallMs, timingsMs: r.timingsMs, tiles: r.plan.tiles.length, workers: r.workers, peakRssMb: process.resourceUsage().maxRSS / 1024, kernelSum: r.solve.kernelSum }));
