/**
 * The kernel solution on the bundled real pairs, judged against a peer: HOTPANTS 5.1.11 run on the
 * same inputs (figures in docs/METRICS.md and the data READMEs). Subtraction by the exact reference
 * convolution; std(z) is the robust std of D/√V over source-free pixels (valid, > 2×FWHM from every
 * ≥3σ detection in either input).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readExposure } from '../core/image/exposure.ts';
import { fitKernel } from '../core/kernel/index.ts';
import { subtractReference } from '../core/convolve/reference.ts';
import { sourceFreeFidelity } from '../core/subtract/metrics.ts';

async function run(science: string, template: string, opts: Record<string, unknown>, noiseMaps = false) {
  const noise = (f: string) => (noiseMaps ? { noise: f.replace('.fits', '.noise.fits') } : {});
  const sci = await readExposure(science, { ...opts, ...noise(science) });
  const tpl = await readExposure(template, { ...opts, ...noise(template) });
  const sol = fitKernel(sci.mi, tpl.mi);
  const diff = subtractReference(sci.mi, tpl.mi, sol);
  return { sol, diff, q: sourceFreeFidelity(diff, sci.mi, tpl.mi, Math.max(sol.fwhm.template, sol.fwhm.science)) };
}

test('pydia pairA: a solution is found, the difference is at least as clean as HOTPANTS\', the microlensing target stands out', async () => {
  const dir = 'test/data/pydia-kb13475-saao1m/pairA/';
  const { sol, diff, q } = await run(dir + 'science.fits', dir + 'template.fits', { saturation: 50000 });
  assert.ok(sol.qa.nUsed >= 20, `used ${sol.qa.nUsed}`);
  // HOTPANTS: std(z) 1.146 (robust 1.087), |z| > 5 in 3.3 % of valid pixels.
  assert.ok(q.robustStd < 1.146, `robust std(z) ${q.robustStd}`);
  assert.ok(q.artefactRate < 0.033, `|z|>5 rate ${q.artefactRate}`);
  // The brightened target at (272, 223): the largest positive z in a 3-px box there is far above the noise.
  let zmax = -Infinity;
  for (let y = 220; y <= 226; y++) for (let x = 269; x <= 275; x++) zmax = Math.max(zmax, diff.image[y * diff.width + x]! / Math.sqrt(diff.variance[y * diff.width + x]!));
  assert.ok(zmax > 20, `target z ${zmax}`);
});

test('JWST NIRCam pair: a solution is found, std(z) at least as good as HOTPANTS\'', async () => {
  const dir = 'test/data/sfft-jwst-nircam-f200w/';
  const sci = dir + 'jw02561001002-02561-o001_t003_nircam_clear-f200w_i2d_stamp.fits';
  const tpl = dir + 'jw01324001001-01324-o001_t001_nircam_clear-f200w_i2d_stamp.fits';
  const { sol, q } = await run(sci, tpl, { saturation: 15 }, true);
  // HOTPANTS: kernel sum 0.9952, std(z) 1.133 (robust 1.125), |z| > 5 in 0.10 %.
  assert.ok(Math.abs(sol.kernelSum - 1) < 0.02, `kernel sum ${sol.kernelSum}`);
  assert.ok(q.robustStd < 1.133, `robust std(z) ${q.robustStd}`);
  assert.ok(q.artefactRate < 0.001, `|z|>5 rate ${q.artefactRate}`);
});
