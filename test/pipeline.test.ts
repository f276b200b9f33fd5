/**
 * The tiled pipeline (core/pipeline through core/engine) on a core/sim pair whose size is not a
 * multiple of the tile size: every layout from one tile to 25 gives the same difference, variance,
 * mask and sources (within 1e-6 of the pixel's scale); no seams along tile borders; the one-tile
 * run equals subtract() on the whole image with the same shared quantities; reruns and an S3 run
 * (s3rver) write byte-identical outputs; bad input ends in one typed error and no outputs.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readExposure, writeExposure } from '../core/image/exposure.ts';
import { createMaskedImage, subImage } from '../core/image/masked-image.ts';
import { simulatePair } from '../core/sim/index.ts';
import { runPipeline, type EngineResult } from '../core/engine/engine.ts';
import { parseSolution, KernelError } from '../core/kernel/index.ts';
import { subtract } from '../core/subtract/subtract.ts';
import { decodeDoc } from '../core/pipeline/codec.ts';
import type { SolveContextDoc } from '../core/pipeline/solve.ts';
import { FitsError } from '../core/fits/index.ts';
import { PipelineError } from '../core/pipeline/errors.ts';
import { S3Storage, StorageError } from '../core/storage/index.ts';
import { maskOf } from '../core/image/mask.ts';
import { robustStd } from '../core/image/stats.ts';
import { startS3rver, stopS3rver, type S3Server } from './helpers/s3rver.ts';

process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const W = 600;
const H = 520;
const dir = mkdtempSync(join(tmpdir(), 'diffim-pipeline-'));
const SCI = join(dir, 'sci.fits');
const TPL = join(dir, 'tpl.fits');
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const INVALID = maskOf('NO_DATA', 'EDGE');

function run(out: string, tileSize: number, workers: number, extra: { keepWork?: boolean; science?: string; template?: string } = {}): Promise<EngineResult> {
  return runPipeline({ science: extra.science ?? SCI, template: extra.template ?? TPL, out, options: { tileSize, exposureId: 7 } }, { workers, keepWork: extra.keepWork });
}

before(async () => {
  const sim = simulatePair({
    width: W, height: H, seed: 5, nStars: 420, starFlux: { min: 3e3, max: 3e5, slope: 1.5 },
    template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, gain: 1, readNoise: 5 },
    science: { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.1, sky: { level: 300 }, gain: 1, readNoise: 5 },
    transients: { count: 12, flux: { min: 4e3, max: 2e4 } },
  });
  await writeExposure(SCI, sim.science);
  await writeExposure(TPL, sim.template);
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** |a − b| relative to the pixel's scale: its value or its noise, whichever is larger. */
function compare(a: string, b: string) {
  return Promise.all([readExposure(a), readExposure(b)]).then(([x, y]) => {
    const A = x.mi;
    const B = y.mi;
    let image = 0;
    let variance = 0;
    let masks = 0;
    for (let i = 0; i < A.image.length; i++) {
      const scale = Math.max(Math.abs(A.image[i]!), Math.sqrt(Math.max(A.variance[i]!, 0)), 1e-30);
      image = Math.max(image, Math.abs(A.image[i]! - B.image[i]!) / scale);
      variance = Math.max(variance, Math.abs(A.variance[i]! - B.variance[i]!) / Math.max(Math.abs(A.variance[i]!), 1e-30));
      if (A.mask[i] !== B.mask[i]) masks++;
    }
    return { image, variance, masks, A, B };
  });
}

const csvRows = (p: string) => readFileSync(p, 'utf8').trim().split('\n');

describe('tiled pipeline', () => {
  const one = join(dir, 'one');
  let oneResult: EngineResult;

  before(async () => {
    oneResult = await run(one, 1024, 1, { keepWork: true });
  });

  it('one tile: outputs, done-marker, sources found, and the work kept on request', () => {
    assert.equal(oneResult.plan.tiles.length, 1);
    for (const f of ['difference.fits', 'kernel.json', 'qa.json', 'sources.fits', 'sources.csv', 'sources.reg', '_DONE']) assert.ok(existsSync(join(one, f)), f);
    const qa = JSON.parse(readFileSync(join(one, 'qa.json'), 'utf8'));
    assert.ok(Math.abs(qa.kernelSum - 1.1) < 0.003, `kernel sum ${qa.kernelSum}`);
    assert.ok(Math.abs(qa.noise.robustStdZ - 1) < 0.1, `robust std(z) ${qa.noise.robustStdZ}`);
    assert.ok(qa.detection.nSources >= 10, `${qa.detection.nSources} sources for 12 injected transients`);
    assert.ok(existsSync(join(one, '.diffim-work', oneResult.plan.runId, 'plan.json')));
  });

  for (const [tileSize, nTiles] of [[256, 9], [128, 25]] as const) {
    it(`${nTiles} tiles (${tileSize} px cores, edge tiles partial) equal the one-tile run within 1e-6`, async () => {
      const out = join(dir, `t${tileSize}`);
      const r = await run(out, tileSize, 2);
      assert.equal(r.plan.tiles.length, nTiles);
      assert.equal(r.solve.kernelSum, oneResult.solve.kernelSum, 'the same kernel solution');
      assert.equal(r.solve.used, oneResult.solve.used);
      const c = await compare(join(one, 'difference.fits'), join(out, 'difference.fits'));
      assert.ok(c.image <= 1e-6, `image differs by ${c.image}`);
      assert.ok(c.variance <= 1e-6, `variance differs by ${c.variance}`);
      assert.equal(c.masks, 0, 'masks equal');
      // The same sources, in the same order with the same ids and measurements.
      const a = csvRows(join(one, 'sources.csv'));
      const b = csvRows(join(out, 'sources.csv'));
      assert.equal(b.length, a.length);
      for (let i = 1; i < a.length; i++) {
        const x = a[i]!.split(',');
        const y = b[i]!.split(',');
        assert.equal(y[0], x[0], 'ids');
        for (let k = 1; k < x.length; k++) {
          const u = Number(x[k]);
          const v = Number(y[k]);
          if (Number.isFinite(u)) assert.ok(Math.abs(u - v) <= 1e-6 * Math.max(1, Math.abs(u)), `source ${i} column ${k}: ${u} vs ${v}`);
          else assert.equal(y[k], x[k]);
        }
      }
      if (nTiles === 25) {
        // No seams: z in 16-px bands across the core borders is distributed as in the interior.
        const D = c.B;
        const near: number[] = [];
        const far: number[] = [];
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            const i = y * W + x;
            if ((D.mask[i]! & (INVALID | maskOf('DETECTED', 'DETECTED_NEGATIVE', 'SAT', 'SAT_TEMPLATE'))) !== 0) continue;
            const z = D.image[i]! / Math.sqrt(D.variance[i]!);
            const dx = Math.min(x % tileSize, tileSize - (x % tileSize));
            const dy = Math.min(y % tileSize, tileSize - (y % tileSize));
            ((x > 0 && dx < 8) || (y > 0 && dy < 8) ? near : far).push(z);
          }
        }
        const sn = robustStd(Float64Array.from(near));
        const sf = robustStd(Float64Array.from(far));
        const mn = near.reduce((s, v) => s + v, 0) / near.length;
        assert.ok(near.length > 20000, `${near.length} border pixels`);
        assert.ok(Math.abs(sn - sf) < 0.03, `robust std(z) at borders ${sn} vs interior ${sf}`);
        assert.ok(Math.abs(mn) < 5 / Math.sqrt(near.length) + 0.02, `mean z at borders ${mn}`);
      }
    });
  }

  it('the one-tile run is subtract() on the whole image with the shared solution, σ² and PSF moments', async () => {
    const work = join(one, '.diffim-work', oneResult.plan.runId);
    const sol = parseSolution(readFileSync(join(work, 'solution.json'), 'utf8'));
    const ctx = decodeDoc<SolveContextDoc>(readFileSync(join(work, 'context.json')), 'context');
    const [s, t] = await Promise.all([readExposure(SCI), readExposure(TPL)]);
    const r = subtract(s.mi, t.mi, { solution: sol, inputVariances: ctx.inputVariances, psfMoments: ctx.psfMoments, detect: true, exposureId: 7 });
    const p = (await readExposure(join(one, 'difference.fits'))).mi;
    let worst = 0;
    for (let i = 0; i < p.image.length; i++) {
      const scale = Math.max(Math.abs(p.image[i]!), Math.sqrt(p.variance[i]!), 1e-30);
      worst = Math.max(worst, Math.abs(p.image[i]! - r.difference.image[i]!) / scale);
      assert.equal(p.mask[i], r.difference.mask[i]);
    }
    assert.ok(worst <= 1e-6, `pipeline vs in-memory: ${worst}`);
    assert.equal(csvRows(join(one, 'sources.csv')).length - 1, r.detection!.sources.length);
  });

  it('a rerun writes the same bytes (idempotent steps, run id from the inputs and config)', async () => {
    const again = await run(one, 1024, 1);
    assert.equal(again.plan.runId, oneResult.plan.runId);
    const out2 = join(dir, 'one-b');
    await run(out2, 1024, 2);
    for (const f of ['difference.fits', 'kernel.json', 'qa.json', 'sources.fits', 'sources.csv', 'sources.reg', '_DONE']) assert.equal(sha(join(out2, f)), sha(join(one, f)), f);
    assert.ok(!existsSync(join(out2, '.diffim-work')), 'work removed after a successful run');
  });
});

describe('tiled pipeline through S3 (s3rver)', () => {
  const BUCKET = 'diffim-pipe';
  let server: S3Server | undefined;
  before(async () => {
    server = await startS3rver(BUCKET);
  });
  after(() => stopS3rver(server));

  it('inputs uploaded, outputs written there: byte-identical to the local run', async () => {
    const creds = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
    const env = { s3: { endpoint: server!.endpoint, region: 'us-east-1', credentials: creds } };
    const st = new S3Storage({ bucket: BUCKET, ...env.s3 });
    await st.put('in/sci.fits', readFileSync(SCI));
    await st.put('in/tpl.fits', readFileSync(TPL));
    const local = join(dir, 'local-256');
    await run(local, 256, 2);
    await runPipeline({ science: `s3://${BUCKET}/in/sci.fits`, template: `s3://${BUCKET}/in/tpl.fits`, out: `s3://${BUCKET}/out`, options: { tileSize: 256, exposureId: 7 } }, { workers: 2, env });
    const keys = await st.list('out/');
    assert.deepEqual(keys.sort(), ['_DONE', 'difference.fits', 'kernel.json', 'qa.json', 'sources.csv', 'sources.fits', 'sources.reg'].map((k) => `out/${k}`));
    for (const k of keys) {
      const remote = createHash('sha256').update(await st.get(k)).digest('hex');
      assert.equal(remote, sha(join(local, k.slice(4))), k);
    }
    // An absent key: the storage's typed error, nothing written under the output prefix.
    await assert.rejects(
      runPipeline({ science: `s3://${BUCKET}/in/nope.fits`, template: `s3://${BUCKET}/in/tpl.fits`, out: `s3://${BUCKET}/bad` }, { workers: 1, env }),
      (e: Error) => (e instanceof FitsError || e instanceof StorageError) && /nope\.fits/.test(e.message) && /NOT_FOUND|not found/i.test(e.message),
    );
    assert.deepEqual(await st.list('bad/'), []);
  });
});

describe('tiled pipeline: bad input', () => {
  const empty = (out: string) => !existsSync(out) || readdirSync(out).length === 0;

  it('missing file, truncated FITS, mismatched sizes, no stars: one typed error, nothing at the output', async () => {
    const out = join(dir, 'bad');
    await assert.rejects(run(out, 256, 1, { science: join(dir, 'missing.fits') }), (e: Error) => (e instanceof FitsError || e instanceof StorageError) && e.message.includes('missing.fits'));
    assert.ok(empty(out));

    const cut = join(dir, 'cut.fits');
    const bytes = readFileSync(SCI);
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await assert.rejects(run(out, 256, 2, { science: cut }), (e: Error) => e instanceof FitsError && e.code === 'TRUNCATED' && e.message.includes('cut.fits'));
    assert.ok(empty(out));

    const small = join(dir, 'small.fits');
    const s = await readExposure(SCI);
    await writeExposure(small, subImage(s.mi, { x0: 0, y0: 0, width: 500, height: 520 }));
    await assert.rejects(run(out, 256, 1, { template: small }), (e: Error) => e instanceof KernelError && e.code === 'BAD_INPUT' && /same pixel grid/.test(e.message));
    assert.ok(empty(out));

    const noise = join(dir, 'noise.fits');
    const mi = createMaskedImage(W, H);
    let x = 12345;
    for (let i = 0; i < mi.image.length; i++) {
      x = (1103515245 * x + 12345) >>> 0;
      mi.image[i] = 100 + ((x / 2 ** 32) - 0.5) * 10;
      mi.variance[i] = 100 / 12;
    }
    await writeExposure(noise, mi);
    await assert.rejects(run(out, 256, 2, { template: noise }), (e: Error) => e instanceof KernelError && (e.code === 'NO_STARS' || e.code === 'TOO_FEW_CANDIDATES'));
    assert.ok(empty(out));

    await assert.rejects(runPipeline({ science: SCI, template: TPL, out, options: { tileSize: 200 } }), (e: Error) => e instanceof PipelineError && /multiple of the spatial cell/.test(e.message));
    assert.ok(empty(out));
  });
});
