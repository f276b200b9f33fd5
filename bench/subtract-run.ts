/**
 * One whole subtraction, read → subtract → write, in its own process so its peak memory
 * (maxRSS) is its own. Usage: node --import tsx bench/subtract-run.ts SCI TPL OUT.fits
 * Prints one JSON line: per-phase ms (and subtract()'s own phases), total, maxRSS MB.
 */
import { readExposure, writeExposure } from '../core/image/exposure.ts';
import { subtract } from '../core/subtract/index.ts';

const [sciPath, tplPath, outPath] = process.argv.slice(2);
const t0 = performance.now();
const [sci, tpl] = await Promise.all([readExposure(sciPath!), readExposure(tplPath!)]);
const t1 = performance.now();
const r = subtract(sci.mi, tpl.mi);
const t2 = performance.now();
await writeExposure(outPath!, r.difference, sci.header);
const t3 = performance.now();
console.log(JSON.stringify({
  read_ms: t1 - t0, subtract_ms: t2 - t1, write_ms: t3 - t2, total_ms: t3 - t0,
  phases_ms: r.qa.timingsMs, maxRSS_MB: process.resourceUsage().maxRSS / 1024,
  kernelSum: r.kernel.kernelSum, robustStdZ: r.qa.noise.robustStdZ, artefactRate: r.qa.artefactRate, used: r.kernel.qa.nUsed,
}));
