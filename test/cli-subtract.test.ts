/**
 * `diffim subtract` and `diffim demo`, run as the installed command (`node cli/bin.js`), judged
 * by the files themselves: fitsverify (0 warnings, 0 errors) and astropy (extensions, shapes, mask
 * planes, WCS on every extension, no NaN) on difference.fits, parseSolution on kernel.json; every
 * failure is one line on stderr with its own exit code and leaves nothing in the output directory.
 *
 * Two chains of child processes run side by side (the machine has 2 cores): the two real
 * subtractions, and the cheap failure cases.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FitsWriter, Header } from '../core/fits/index.ts';
import { readExposure } from '../core/image/exposure.ts';
import { parseSolution } from '../core/kernel/solution.ts';
import { fitsverify } from './helpers/fitsverify.ts';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const BIN = join(ROOT, 'cli/bin.js');
const PAIR = join(ROOT, 'test/data/pydia-kb13475-saao1m/pairA');
const SCI = join(PAIR, 'science.fits');
const TPL = join(PAIR, 'template.fits');
const SMALL = join(ROOT, 'test/data/ztf-alert-cutouts/ZTF17aaacxxf_739260766315010006_ref.fits');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const tmp = mkdtempSync(join(tmpdir(), 'diffim-cli-subtract-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[]): Promise<Run> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: tmp, env: { ...process.env, DIFFIM_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

/** astropy's view of difference.fits, as JSON. */
function astropy(path: string, wcsKeys: string[]): {
  names: string[]; shapes: number[][]; maskPlanes: string[]; wcs: Record<string, Record<string, unknown>>;
  primary: Record<string, unknown>; nan: Record<string, number>; sip: boolean[];
} {
  const script = `
import json, sys, warnings
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
path, keys = sys.argv[1], json.loads(sys.argv[2])
with fits.open(path, checksum=True) as h:
    ext = ['IMAGE', 'MASK', 'VARIANCE']
    out = {'names': [x.name for x in h], 'shapes': [list(h[e].data.shape) for e in ext],
           'maskPlanes': [k for k in h['MASK'].header if k.startswith('MP_')],
           'wcs': {e: {k: h[e].header.get(k) for k in keys} for e in ext},
           'primary': {k: h[0].header.get(k) for k in ['DIFFIM', 'SCIENCE', 'TEMPLATE', 'DIFFMODE', 'PRESET', 'KSUM', 'DECORR', 'EXPTIME', 'FILTER', 'MJD-OBS']},
           'nan': {e: int(np.count_nonzero(~np.isfinite(h[e].data))) for e in ['IMAGE', 'VARIANCE']},
           'sip': []}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        out['sip'] = [WCS(h[e].header).sip is not None for e in ext]
print(json.dumps(out))
`;
  const r = spawnSync('/usr/bin/python3', ['-c', script, path, JSON.stringify(wcsKeys)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `astropy could not read ${path}:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** sources.fits through astropy: columns, units, rows; sky positions recomputed with astropy.wcs from difference.fits' IMAGE header. */
function astropySources(dir: string): { columns: string[]; units: Record<string, string | null>; n: number; top: { x: number; y: number; significance: number } | null; skyErrMas: number | null } {
  const script = `
import json, sys, warnings
import numpy as np
from astropy.table import Table
from astropy.io import fits
from astropy.wcs import WCS
d = sys.argv[1]
t = Table.read(d + '/sources.fits', hdu='DIASOURCES')
out = {'columns': t.colnames, 'units': {c: (str(t[c].unit) if t[c].unit is not None else None) for c in ['x', 'ra', 'psf_flux', 'ixx']}, 'n': len(t), 'top': None, 'skyErrMas': None}
pos = t[(~t['is_negative']) & (~t['is_dipole'])]
if len(pos):
    r = pos[np.argmax(pos['significance'])]
    out['top'] = {'x': float(r['x']), 'y': float(r['y']), 'significance': float(r['significance'])}
ra = np.asarray(t['ra'], dtype=float)
if len(t) and np.all(np.isfinite(ra)):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        w = WCS(fits.open(d + '/difference.fits')['IMAGE'].header)
    a, b = w.all_pix2world(np.asarray(t['x'], dtype=float), np.asarray(t['y'], dtype=float), 0)
    dra = (np.asarray(t['ra']) - a) * np.cos(np.radians(b))
    out['skyErrMas'] = float(np.max(np.hypot(dra, np.asarray(t['dec']) - b)) * 3.6e6)
print(json.dumps(out))
`;
  const r = spawnSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `astropy could not read ${dir}/sources.fits:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

function checkSources(dir: string) {
  for (const f of ['sources.fits', 'sources.csv', 'sources.reg']) assert.ok(existsSync(join(dir, f)), `${f} missing`);
  const v = fitsverify(join(dir, 'sources.fits'));
  assert.ok(v.warnings === 0 && v.errors === 0, `fitsverify sources.fits: ${v.warnings} warnings, ${v.errors} errors\n${v.output}`);
  const s = astropySources(dir);
  for (const c of ['id', 'x', 'y', 'ra', 'dec', 'psf_flux', 'psf_flux_err', 'ap_flux_12_0', 'snr', 'is_negative', 'is_dipole', 'science_flux', 'template_flux', 'flag_edge']) assert.ok(s.columns.includes(c), `sources.fits lacks ${c}`);
  assert.deepEqual(s.units, { x: 'pix', ra: 'deg', psf_flux: 'adu', ixx: 'pix2' });
  const csvHead = readFileSync(join(dir, 'sources.csv'), 'utf8').split('\n')[0]!.split(',');
  assert.deepEqual(csvHead, s.columns, 'sources.csv has the FITS columns');
  assert.match(readFileSync(join(dir, 'sources.reg'), 'utf8'), /^# Region file format: DS9 version 4\.1/);
  return s;
}

/** Checks shared by both successful runs. */
function checkOutputs(dir: string, wcsKeys: string[]) {
  for (const f of ['difference.fits', 'kernel.json', 'qa.json']) assert.ok(existsSync(join(dir, f)), `${f} missing`);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'temporary files left behind');
  const v = fitsverify(join(dir, 'difference.fits'));
  assert.ok(v.warnings === 0 && v.errors === 0, `fitsverify: ${v.warnings} warnings, ${v.errors} errors\n${v.output}`);
  const a = astropy(join(dir, 'difference.fits'), wcsKeys);
  assert.deepEqual(a.names, ['PRIMARY', 'IMAGE', 'MASK', 'VARIANCE']);
  assert.deepEqual(a.shapes, [[510, 505], [510, 505], [510, 505]]);
  for (const p of ['MP_BAD', 'MP_SAT', 'MP_EDGE', 'MP_NO_DATA', 'MP_SAT_TEMPLATE']) assert.ok(a.maskPlanes.includes(p), `MASK lacks ${p}: ${a.maskPlanes}`);
  assert.deepEqual(a.nan, { IMAGE: 0, VARIANCE: 0 });
  const sol = parseSolution(readFileSync(join(dir, 'kernel.json'), 'utf8'));
  const qa = JSON.parse(readFileSync(join(dir, 'qa.json'), 'utf8'));
  assert.equal(qa.kernelSum, sol.kernelSum);
  assert.ok(qa.noise.robustStdZ > 0.8 && qa.noise.robustStdZ < 1.3, `robust std(z) ${qa.noise.robustStdZ}`);
  assert.equal(qa.outputs.difference, join(dir, 'difference.fits'));
  assert.equal(a.primary.DIFFIM, VERSION);
  assert.ok(Math.abs((a.primary.KSUM as number) - sol.kernelSum) < 1e-12);
  return { a, sol, qa };
}

// A copy of the science frame with a TAN-SIP WCS, FILTER and a long file name (CONTINUE card).
const LONG_NAME = 'kb13475-science-frame-0096-with-a-file-name-long-enough-to-need-the-fits-continue-convention.fits';
const WCS: Record<string, string | number> = {
  WCSAXES: 2, CTYPE1: 'RA---TAN-SIP', CTYPE2: 'DEC--TAN-SIP', CRVAL1: 273.8708, CRVAL2: -25.285, CRPIX1: 253.5, CRPIX2: 255.5,
  CD1_1: -1.1e-4, CD1_2: 2.5e-7, CD2_1: 2.5e-7, CD2_2: 1.1e-4, CUNIT1: 'deg', CUNIT2: 'deg', RADESYS: 'ICRS', EQUINOX: 2000.5,
  LONPOLE: 180.25, LATPOLE: -25.285, A_ORDER: 2, A_2_0: 1.5e-6, A_1_1: -2.5e-7, A_0_2: 3.5e-7, B_ORDER: 2, B_2_0: 2.5e-7, B_1_1: 1.5e-6, B_0_2: -4.5e-7,
};

async function sciWithWcs(): Promise<string> {
  const e = await readExposure(SCI);
  const h = new Header(e.header.cards.filter((c) => c.key !== 'EPOCH').map((c) => ({ ...c })));
  for (const [k, v] of Object.entries(WCS)) h.set(k, v, '', typeof v === 'number' && !Number.isInteger(v) ? 'float' : undefined);
  h.set('FILTER', 'I', 'filter');
  h.set('SATURATE', 50000, 'non-linear above');
  const path = join(tmp, LONG_NAME);
  const w = await FitsWriter.toFile(path);
  await w.writeImage(e.mi.image, [e.mi.width, e.mi.height], h);
  await w.close();
  return path;
}

// Chain 1: the two real subtractions, one after the other.
const demoDir = join(tmp, 'demo');
const wcsDir = join(tmp, 'wcs');
const cfgOk = join(tmp, 'ok.json');
writeFileSync(cfgOk, JSON.stringify({ preset: 'default', kernel: { kernelSize: 13, fitForBackground: true }, decorrelate: true }));
const heavy = (async () => {
  const demo = await run(['demo', '--out', demoDir]);
  const wcs = await run(['subtract', '--science', await sciWithWcs(), '--template', TPL, '--out', wcsDir,
    '--preset', 'snap', '--mode', 'convolveTemplate', '--set', 'spatialBgOrder=1', '--config', cfgOk, '--no-decorrelate', '--json', '--quiet',
    '--exposure-id', '4242', '--zero-point', '25']);
  return { demo, wcs };
})();

// Chain 2: failures (cheap) and help, one after the other.
const bad = (name: string) => join(tmp, `bad-${name}`);
const truncated = join(tmp, 'truncated.fits');
writeFileSync(truncated, readFileSync(SCI).subarray(0, 5000));
const badJson = join(tmp, 'bad.json');
writeFileSync(badJson, '{"kernel": {"kernelSize": 21,}}');
const badValue = join(tmp, 'bad-value.json');
writeFileSync(badValue, JSON.stringify({ kernel: { kernelSize: 4 } }));
const badDetect = join(tmp, 'bad-detect.json');
writeFileSync(badDetect, JSON.stringify({ detect: { apertureRadii: [] } }));
const noise = join(tmp, 'noise.fits');
{
  // Pure noise around a sky of 1000 ADU: no stars at all.
  let seed = 7;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const img = new Float32Array(128 * 128);
  for (let i = 0; i < img.length; i++) img[i] = 1000 + 30 * Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
  const w = await FitsWriter.toFile(noise);
  await w.writeImage(img, [128, 128], new Header().set('GAIN', 1.0, '', 'float').set('RDNOISE', 5.0, '', 'float'));
  await w.close();
}
const FAILURES: { name: string; args: string[]; code: number; message: RegExp }[] = [
  { name: 'missing science file', args: ['--science', join(tmp, 'nope.fits'), '--template', TPL], code: 4, message: /nope\.fits/ },
  { name: 'truncated FITS', args: ['--science', truncated, '--template', TPL], code: 3, message: /truncated\.fits.*TRUNCATED/ },
  { name: 'different sizes', args: ['--science', SCI, '--template', SMALL], code: 8, message: /505×510.*63×63.*same pixel grid/ },
  { name: 'unknown --set key', args: ['--science', SCI, '--template', TPL, '--set', 'kernalSize=21'], code: 2, message: /kernalSize: is not a kernel configuration key/ },
  { name: 'bad --set value', args: ['--science', SCI, '--template', TPL, '--set', 'kernelSize=4'], code: 2, message: /kernelSize: must be odd/ },
  { name: 'invalid --config JSON', args: ['--science', SCI, '--template', TPL, '--config', badJson], code: 7, message: /bad\.json: not valid JSON/ },
  { name: 'bad value in --config', args: ['--science', SCI, '--template', TPL, '--config', badValue], code: 7, message: /bad-value\.json: kernel config kernelSize: must be odd/ },
  { name: 'no stars (--quiet)', args: ['--science', noise, '--template', noise, '--quiet'], code: 5, message: /NO_STARS/ },
  { name: 'missing --out', args: ['--science', SCI, '--template', TPL], code: 2, message: /needs --out/ },
  { name: 'unknown detect key', args: ['--science', SCI, '--template', TPL, '--set', 'detect.thresholdValu=5'], code: 2, message: /thresholdValu: is not a detection configuration key/ },
  { name: 'bad --exposure-id', args: ['--science', SCI, '--template', TPL, '--exposure-id', 'abc'], code: 2, message: /--exposure-id must be a non-negative integer/ },
  { name: 'bad detect value in --config', args: ['--science', SCI, '--template', TPL, '--config', badDetect], code: 7, message: /bad-detect\.json: detect config apertureRadii/ },
];
const light = (async () => {
  const out: Run[] = [];
  for (const f of FAILURES) out.push(await run(['subtract', ...f.args, ...(f.name === 'missing --out' ? [] : ['--out', bad(f.name.replace(/\W+/g, '-'))])]));
  const help = await run(['subtract', '--help']);
  return { failures: out, help };
})();

test('demo: exit 0, difference.fits clean for fitsverify and astropy, kernel.json and qa.json usable', async () => {
  const { demo } = await heavy;
  assert.equal(demo.code, 0, demo.stderr);
  // pairA has no celestial WCS; what it has (MJD-OBS, DATE-OBS, EPOCH → EQUINOX) is on every extension.
  const { a, qa } = checkOutputs(demoDir, ['MJD-OBS', 'DATE-OBS', 'EQUINOX']);
  for (const e of ['IMAGE', 'MASK', 'VARIANCE']) assert.deepEqual(a.wcs[e], { 'MJD-OBS': 56507.73936, 'DATE-OBS': '2013-08-03', EQUINOX: 2000.0 });
  assert.deepEqual([a.primary.SCIENCE, a.primary.TEMPLATE, a.primary.PRESET, a.primary.DECORR, a.primary.EXPTIME], ['science.fits', 'template.fits', 'default', true, 300.038]);
  assert.equal(qa.decorrelated, true);
  assert.ok(qa.artefactRate < 0.033, `artefact rate ${qa.artefactRate}`);
  // The summary says where the outputs are and where to look.
  assert.ok(demo.stderr.includes(`outputs in ${demoDir}/`), demo.stderr);
  assert.match(demo.stderr, /\(272, 223\)/);
  assert.match(demo.stderr, /kernel sum \d\.\d{4} · robust std\(z\) \d\.\d{3}/);
  assert.doesNotMatch(demo.stderr, /^diffim: /m);
  // DIA sources: the brightened target is the most significant positive one; no WCS → no sky.
  const s = checkSources(demoDir);
  assert.ok(s.top && Math.hypot(s.top.x - 272, s.top.y - 223) < 2, `top positive source ${JSON.stringify(s.top)}`);
  assert.equal(s.skyErrMas, null);
  assert.equal(qa.detection.nSources, s.n);
  assert.ok(qa.detection.nPositive > 0 && qa.detection.nNegative > 0 && qa.detection.maskFractions.DETECTED > 0);
  assert.match(qa.detection.wcs, /^none/);
});

test('subtract: the science WCS (TAN-SIP) on IMAGE, MASK and VARIANCE; provenance; --config, --set, --preset, --no-decorrelate, --json', async () => {
  const { wcs } = await heavy;
  assert.equal(wcs.code, 0, wcs.stderr);
  assert.equal(wcs.stderr, '', '--quiet must print nothing');
  const { a, sol, qa } = checkOutputs(wcsDir, Object.keys(WCS));
  for (const e of ['IMAGE', 'MASK', 'VARIANCE']) {
    for (const [k, v] of Object.entries(WCS)) {
      const got = a.wcs[e]![k];
      if (typeof v === 'number') assert.ok(typeof got === 'number' && Math.abs(got - v) <= 1e-12 * Math.max(1, Math.abs(v)), `${e} ${k}: ${got} vs ${v}`);
      else assert.equal(got, v, `${e} ${k}`);
    }
  }
  assert.deepEqual(a.sip, [true, true, true]);
  assert.equal(a.primary.SCIENCE, LONG_NAME, 'long file name kept whole (CONTINUE)');
  assert.deepEqual([a.primary.TEMPLATE, a.primary.PRESET, a.primary.DECORR, a.primary.DIFFMODE, a.primary.FILTER], ['template.fits', 'snap', false, 'convolveTemplate', 'I']);
  // Precedence: --preset and --no-decorrelate over the file; the file's kernel keys; --set on top.
  assert.equal(sol.config.kernelSize, 13);
  assert.equal(sol.config.fitForBackground, true);
  assert.equal(sol.config.spatialBgOrder, 1);
  assert.equal(sol.config.alardNGauss, 2, 'snap preset');
  assert.equal(qa.decorrelated, false);
  assert.deepEqual(JSON.parse(wcs.stdout), qa, '--json prints qa.json');
  // Sky coordinates of every source from the TAN-SIP WCS agree with astropy.wcs to 1 mas.
  const s = checkSources(wcsDir);
  assert.ok(s.n > 10 && s.skyErrMas !== null && s.skyErrMas < 1, `sources ${s.n}, sky error ${s.skyErrMas} mas`);
  assert.equal(qa.detection.wcs, 'TAN-SIP');
  assert.equal(qa.detection.exposureId, 4242);
  assert.ok(Math.abs(qa.detection.depth.limitingMagnitude - (25 - 2.5 * Math.log10(qa.detection.depth.limitingFlux))) < 1e-9);
});

test('failures: one line on stderr, their own exit code, nothing written', async () => {
  const { failures } = await light;
  FAILURES.forEach((f, i) => {
    const r = failures[i]!;
    assert.equal(r.code, f.code, `${f.name}: exit ${r.code}, stderr ${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `${f.name}: ${r.stderr}`);
    assert.match(lines[0]!, /^diffim: /, f.name);
    assert.match(lines[0]!, f.message, f.name);
    assert.equal(r.stdout, '', f.name);
    const dir = bad(f.name.replace(/\W+/g, '-'));
    assert.ok(!existsSync(join(dir, 'difference.fits')) && (!existsSync(dir) || readdirSync(dir).length === 0), `${f.name}: output left in ${dir}`);
  });
});

test('subtract --help documents every option, the outputs and the exit codes', async () => {
  const { help } = await light;
  assert.equal(help.code, 0);
  for (const o of ['--science', '--template', '--out', '--preset', '--mode', '--set', '--config', '--no-decorrelate', '--no-detect', '--exposure-id', '--zero-point', '--json', '--quiet', '--help']) assert.ok(help.stdout.includes(o), `help lacks ${o}`);
  for (const s of ['difference.fits', 'kernel.json', 'qa.json', 'sources.fits', 'sources.csv', 'sources.reg', 'thresholdValue', 'default | delta-function | snap', 'convolveTemplate | convolveScience | auto', 'kernelSize', 'badMaskPlanes']) assert.ok(help.stdout.includes(s), `help lacks ${s}`);
  for (const c of [0, 2, 3, 4, 5, 6, 7, 8, 70]) assert.match(help.stdout, new RegExp(`^  ${c} +\\S`, 'm'), `help lacks exit code ${c}`);
});
