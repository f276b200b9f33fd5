/**
 * Exposures: reading plain images (variance from GAIN/RDNOISE, noise or weight maps, image
 * statistics), SATURATE → SAT, non-finite → NO_DATA, and the LSST-style MEF round trip, checked
 * against the FITS files themselves (astropy/fitsverify for what we write).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FitsError, FitsReader, FitsWriter, Header } from '../core/fits/index.ts';
import { readExposure, writeExposure } from '../core/image/exposure.ts';
import { maskBit } from '../core/image/mask.ts';
import { runAstropyDump, runFitsverify, type DumpOk } from './oracle/canonical.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffim-exposure-'));
const PYDIA = 'test/data/pydia-kb13475-saao1m/pairA/science.fits';
const NIRCAM = 'test/data/sfft-jwst-nircam-f200w/jw02561001002-02561-o001_t003_nircam_clear-f200w_i2d_stamp';

async function writeFloat(path: string, data: Float32Array, w: number, h: number, header?: Header): Promise<void> {
  const wr = await FitsWriter.toFile(path);
  await wr.writeImage(data, [w, h], header);
  await wr.close();
}

describe('exposure I/O', () => {
  it('builds variance from GAIN and RDNOISE (pydia: GAIN 1.9 e-/ADU, RDNOISE 5 e-)', async () => {
    const e = await readExposure(PYDIA);
    assert.equal(e.varianceSource, 'gain');
    const r = await FitsReader.open(PYDIA);
    const raw = (await r.readImage(r.hdus[0]!)).data as Uint16Array;
    await r.close();
    for (const i of [0, 1000, 123456]) {
      const want = raw[i]! / 1.9 + (5 / 1.9) ** 2;
      assert.ok(Math.abs(e.mi.variance[i]! - want) <= 1e-5 * want, `pixel ${i}: ${e.mi.variance[i]} vs ${want}`);
      assert.equal(e.mi.image[i], raw[i]);
    }
    assert.equal(e.header.string('OBJECT'), 'KB13475');
  });

  it('takes variance from a noise map (σ²) and a weight map (1/w)', async () => {
    const e = await readExposure(`${NIRCAM}.fits`, { noise: `${NIRCAM}.noise.fits` });
    const r = await FitsReader.open(`${NIRCAM}.noise.fits`);
    const sigma = (await r.readImage(r.hdus[0]!)).data as Float32Array;
    await r.close();
    assert.equal(e.varianceSource, 'noise-map');
    assert.equal(e.mi.variance[5000], Math.fround(sigma[5000]! * sigma[5000]!));
    const weight = Float32Array.from(sigma, (s) => 1 / (s * s));
    weight[7] = 0; // zero weight: no data
    await writeFloat(join(dir, 'weight.fits'), weight, 900, 900);
    const w = await readExposure(`${NIRCAM}.fits`, { weight: join(dir, 'weight.fits') });
    assert.equal(w.varianceSource, 'weight-map');
    assert.ok(Math.abs(w.mi.variance[5000]! / e.mi.variance[5000]! - 1) < 1e-6);
    assert.ok(w.mi.mask[7]! & maskBit('NO_DATA'));
  });

  it('marks SATURATE as SAT and non-finite pixels as NO_DATA with finite zeros', async () => {
    const img = new Float32Array(40 * 30).fill(100);
    img[10] = 60000;
    img[20] = NaN;
    const h = new Header().set('SATURATE', 50000).set('GAIN', 2).set('RDNOISE', 4);
    await writeFloat(join(dir, 'sat.fits'), img, 40, 30, h);
    const e = await readExposure(join(dir, 'sat.fits'));
    assert.ok(e.mi.mask[10]! & maskBit('SAT'));
    assert.equal(e.mi.mask[11]! & maskBit('SAT'), 0);
    assert.ok(e.mi.mask[20]! & maskBit('NO_DATA'));
    assert.equal(e.mi.image[20], 0);
    assert.equal(e.mi.variance[20], 0);
    assert.ok(e.mi.image.every(Number.isFinite) && e.mi.variance.every(Number.isFinite));
  });

  it('falls back to the robust sky variance, with a warning, when nothing else is known', async () => {
    let seed = 1;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const img = new Float32Array(100 * 100);
    for (let i = 0; i < img.length; i++) img[i] = 1000 + 10 * Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
    await writeFloat(join(dir, 'nogain.fits'), img, 100, 100);
    const e = await readExposure(join(dir, 'nogain.fits'));
    assert.equal(e.varianceSource, 'image-statistics');
    assert.ok(e.warnings.some((w) => /no GAIN/.test(w)));
    assert.ok(Math.abs(Math.sqrt(e.mi.variance[0]!) - 10) < 0.5, `σ ${Math.sqrt(e.mi.variance[0]!)}`);
  });

  it('writes an LSST-style MEF that fitsverify and astropy accept, and reads it back identically', async () => {
    const e = await readExposure(`${NIRCAM}.fits`, { noise: `${NIRCAM}.noise.fits` });
    e.mi.mask[3] = maskBit('CR') | maskBit('DETECTED_NEGATIVE');
    const out = join(dir, 'exp.fits');
    await writeExposure(out, e.mi, e.header, { checksum: true });
    const v = await runFitsverify(out);
    assert.ok(v.ok && v.warnings === 0 && v.errors === 0, v.output);
    const [d] = (await runAstropyDump([out])) as DumpOk[];
    assert.deepEqual(d!.hdus.map((h) => h.name), ['PRIMARY', 'IMAGE', 'MASK', 'VARIANCE']);
    const mask = d!.hdus[2]!.header;
    assert.deepEqual(mask.find((c) => c.key === 'MP_DETECTED_NEGATIVE')?.value, { t: 'int', v: '6' });
    assert.deepEqual(d!.hdus[1]!.header.find((c) => c.key === 'CTYPE1')?.value, { t: 'str', v: 'RA---TAN' });
    const back = await readExposure(out);
    assert.equal(back.varianceSource, 'file');
    assert.deepEqual(back.mi.image, e.mi.image);
    assert.deepEqual(back.mi.variance, e.mi.variance);
    assert.deepEqual(back.mi.mask, e.mi.mask);
  });

  it('refuses bad inputs with one clear FitsError naming the file', async () => {
    await assert.rejects(readExposure(`${NIRCAM}.fits`, { noise: `${NIRCAM}.noise.fits`, weight: `${NIRCAM}.noise.fits` }), (e: unknown) => e instanceof FitsError && /not both/.test(e.message));
    await assert.rejects(readExposure(`${NIRCAM}.fits`, { noise: PYDIA }), (e: unknown) => e instanceof FitsError && e.code === 'BAD_VALUE' && e.message.includes('science.fits') && /505×510/.test(e.message));
    await writeFloat(join(dir, 'flat.fits'), new Float32Array(20 * 20).fill(5), 20, 20);
    await assert.rejects(readExposure(join(dir, 'flat.fits')), (e: unknown) => e instanceof FitsError && /no scatter/.test(e.message) && e.message.includes('flat.fits'));
    const tbl = new FitsWriter(await (await import('../core/fits/sink.ts')).FileSink.create(join(dir, 'table.fits')));
    await tbl.writeTable([{ name: 'a', values: Int32Array.from([1]) }], 1);
    await tbl.close();
    await assert.rejects(readExposure(join(dir, 'table.fits')), (e: unknown) => e instanceof FitsError && e.code === 'UNSUPPORTED' && /no 2-D image/.test(e.message));
    await assert.rejects(readExposure(join(dir, 'missing.fits')), (e: unknown) => e instanceof FitsError && e.code === 'IO');
  });
});
