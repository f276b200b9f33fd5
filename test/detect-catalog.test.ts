/**
 * DIA source catalogue outputs, judged by independent readers: sources.fits by fitsverify (0
 * warnings, 0 errors) and astropy (Table.read of DIASOURCES: names, units, dtypes, values, ids
 * beyond 2^53, NaN/masked nulls, TTYPE descriptions, checksums); sources.csv by Python's csv
 * module; sources.reg by a strict DS9 grammar and by astropy-regions (Regions.read, which also
 * undoes DS9's 1-based image coordinates, so its centres must equal the catalogue's x, y).
 * Needs /usr/bin/python3 with astropy and regions, and fitsverify (scripts/install-deps.sh).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Header } from '../core/fits/index.ts';
import { apertureTag, catalogFields, catalogMarkdown, csvField, fitsFluxUnit, toCsv, toDs9Regions, writeSourcesFits, type CatalogField } from '../core/detect/catalog.ts';
import { DetectError } from '../core/detect/config.ts';
import type { DiaSource, SourceFlags } from '../core/detect/source.ts';
import { fitsverify } from './helpers/fitsverify.ts';

const PYTHON = '/usr/bin/python3';
const RADII = [3, 12.5];
const OPTS = { apertureRadii: RADII, fluxUnit: 'adu' };
const tmp = mkdtempSync(join(tmpdir(), 'diffim-catalog-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const NO_FLAGS: SourceFlags = { edge: false, saturatedCenter: false, satTemplateCenter: false, noData: false, interpolatedCenter: false, crCenter: false, psfFluxFailed: false, dipoleFitFailed: false };

function source(over: Partial<DiaSource>): DiaSource {
  return {
    id: 1n, x: 10.25, y: 20.75, ra: 150.12345678901234, dec: 2.2000000000000002, peakX: 10, peakY: 21, significance: 8.25,
    psfFlux: 1234.5678, psfFluxErr: 45.1, apFlux: [1000.125, 1300.5], apFluxErr: [40.5, 80.25], ixx: 2.5, iyy: 3.125, ixy: -0.25,
    snr: 1234.5678 / 45.1, isNegative: false, isDipole: false, dipole: null, footprintArea: 97, nPositivePeaks: 1, nNegativePeaks: 0,
    scienceFlux: 5000.5, scienceFluxErr: 70.75, templateFlux: 3765.9, templateFluxErr: 60.125, flags: { ...NO_FLAGS }, ...over,
  };
}

const SOURCES: DiaSource[] = [
  source({ id: 1001n }),
  // Negative, no WCS, failed PSF flux (NaN in a non-nullable float column), several flags.
  source({
    id: 2n ** 62n + 7n, x: 1 / 3, y: 499.99999999999994, ra: null, dec: null, peakX: 0, peakY: 500, significance: -6.5, psfFlux: NaN, psfFluxErr: NaN, snr: NaN,
    apFlux: [-800.5, -900.25], isNegative: true, ixx: 1e-7, footprintArea: 12, nPositivePeaks: 0, nNegativePeaks: 1,
    flags: { ...NO_FLAGS, edge: true, crCenter: true, psfFluxFailed: true },
  }),
  // A fitted dipole.
  source({
    id: 3003n, x: 120.5, y: 80.5, isDipole: true, significance: 12, nPositivePeaks: 1, nNegativePeaks: 1, footprintArea: 240,
    dipole: { posFlux: 900.5, posFluxErr: 30.25, negFlux: 850.125, negFluxErr: 29.5, posX: 122.25, posY: 81.5, negX: 118.75, negY: 79.5, separation: Math.hypot(3.5, 2), orientation: (Math.atan2(2, 3.5) * 180) / Math.PI, chi2dof: 1.0625 },
  }),
  // Both polarities but the dipole fit failed: no dipole values; largest int64 id; infinite S/N.
  source({ id: 2n ** 63n - 1n, x: 300, y: 0, psfFluxErr: 0, snr: Infinity, nPositivePeaks: 2, nNegativePeaks: 1, flags: { ...NO_FLAGS, dipoleFitFailed: true, satTemplateCenter: true, noData: true, interpolatedCenter: true, saturatedCenter: true } }),
];

const NAMES = catalogFields(OPTS).map((f) => f.name);

function python(script: string, ...args: string[]): any {
  const r = spawnSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8' });
  if (r.error) throw new Error(`${PYTHON} is missing (scripts/install-deps.sh installs it): ${r.error.message}`);
  assert.equal(r.status, 0, `python failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** astropy's view of sources.fits; cells as JSON-safe strings (ids exact, floats by repr). */
const ASTROPY_READ = `
import json, sys, warnings
import numpy as np
from astropy.io import fits
from astropy.table import Table
path = sys.argv[1]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    t = Table.read(path, hdu='DIASOURCES')
    with fits.open(path, checksum=True) as h:
        hdr = h['DIASOURCES'].header
        comments = [hdr.comments['TTYPE%d' % (i + 1)] for i in range(hdr['TFIELDS'])]
        tunits = [hdr.get('TUNIT%d' % (i + 1)) for i in range(hdr['TFIELDS'])]
        tnulls = [k for k in hdr if k.startswith('TNULL')]
        primary = {k: h[0].header.get(k) for k in ['DIFFIM', 'SCIENCE', 'NAXIS']}
        names = [x.name for x in h]
def cell(col, i):
    if np.ma.is_masked(col[i]):
        return None
    v = col[i]
    if col.dtype.kind == 'b':
        return bool(v)
    if col.dtype.kind == 'i':
        return str(int(v))
    return repr(float(v))
out = {
    'hdus': names, 'nrows': len(t), 'names': t.colnames, 'comments': comments, 'tunits': tunits, 'tnulls': tnulls,
    'units': [None if t[c].unit is None else t[c].unit.to_string('fits') for c in t.colnames],
    'dtypes': [t[c].dtype.kind + str(t[c].dtype.itemsize) for c in t.colnames],
    'rows': [[cell(t[c], i) for c in t.colnames] for i in range(len(t))],
    'primary': primary, 'warnings': [str(w.message) for w in caught],
}
print(json.dumps(out))
`;

const EXPECTED_UNITS: Record<string, string | null> = { x: 'pix', y: 'pix', ra: 'deg', dec: 'deg', peak_x: 'pix', peak_y: 'pix', ixx: 'pix2', iyy: 'pix2', ixy: 'pix2', footprint_area: 'pix2', dipole_pos_x: 'pix', dipole_pos_y: 'pix', dipole_neg_x: 'pix', dipole_neg_y: 'pix', dipole_separation: 'pix', dipole_orientation: 'deg' };
const FLUX_COLUMNS = /flux/;

function expectedUnit(name: string, flux: string): string | null {
  if (name in EXPECTED_UNITS) return EXPECTED_UNITS[name]!;
  return FLUX_COLUMNS.test(name) && !name.startsWith('flag_') ? flux : null;
}

/** A floating value astropy reports: null when masked, else its repr. */
function sameFloat(cell: string | null, v: number | null, what: string): void {
  if (v === null || Number.isNaN(v)) {
    assert.ok(cell === null || cell === 'nan', `${what}: null expected (masked or NaN), got ${cell}`);
    return;
  }
  assert.notEqual(cell, null, `${what}: masked, expected ${v}`);
  const got = cell === 'inf' ? Infinity : cell === '-inf' ? -Infinity : Number(cell);
  assert.ok(Object.is(got, v), `${what}: ${cell} != ${v}`);
}

function checkCell(f: CatalogField, s: DiaSource, cell: unknown, what: string): void {
  const v = f.get(s);
  if (f.format === 'K') assert.equal(cell, (v as bigint).toString(), what);
  else if (f.format === 'J') assert.equal(cell, String(v), what);
  else if (f.format === 'L') assert.equal(cell, v, what);
  else sameFloat(cell as string | null, v as number | null, what);
}

test('sources.fits: fitsverify clean; astropy reads names, units, types, descriptions and every value back', async () => {
  const path = join(tmp, 'sources.fits');
  const prov = new Header();
  prov.set('DIFFIM', '0.1.0', 'diffim version');
  prov.set('SCIENCE', 'science.fits', 'science exposure');
  await writeSourcesFits(path, SOURCES, { ...OPTS, header: prov });
  const v = fitsverify(path);
  assert.ok(v.warnings === 0 && v.errors === 0, `fitsverify: ${v.warnings} warnings, ${v.errors} errors\n${v.output}`);

  const a = python(ASTROPY_READ, path);
  assert.deepEqual(a.warnings, [], 'astropy warned (units, checksums…)');
  assert.deepEqual(a.hdus, ['PRIMARY', 'DIASOURCES']);
  assert.deepEqual(a.primary, { DIFFIM: '0.1.0', SCIENCE: 'science.fits', NAXIS: 0 });
  const fields = catalogFields(OPTS);
  assert.deepEqual(a.names, NAMES);
  assert.deepEqual(NAMES.slice(10, 14), ['ap_flux_3_0', 'ap_flux_3_0_err', 'ap_flux_12_5', 'ap_flux_12_5_err']);
  assert.deepEqual(a.comments, fields.map((f) => f.description), 'TTYPE comments (descriptions) truncated or missing');
  assert.deepEqual(a.tnulls, [], 'no integer column can be null, so none declares TNULL');
  // Units: as written (TUNIT) and as astropy's FITS unit parser understands them.
  const want = NAMES.map((n) => expectedUnit(n, 'adu'));
  assert.deepEqual(a.tunits, want);
  assert.deepEqual(a.units, want);
  const kinds: Record<CatalogField['format'], string> = { K: 'i8', J: 'i4', D: 'f8', L: 'b1' };
  assert.deepEqual(a.dtypes, fields.map((f) => kinds[f.format]));

  assert.equal(a.nrows, SOURCES.length);
  SOURCES.forEach((s, i) => fields.forEach((f, j) => checkCell(f, s, a.rows[i][j], `row ${i} ${f.name}`)));
  // The ones that matter most, spelled out.
  assert.equal(a.rows[1][0], '4611686018427387911');
  assert.equal(a.rows[3][0], '9223372036854775807');
  assert.equal(a.rows[1][NAMES.indexOf('ra')], null, 'NaN ra is read as masked');
  assert.equal(a.rows[2][NAMES.indexOf('is_dipole')], true);
  assert.equal(a.rows[0][NAMES.indexOf('dipole_chi2dof')], null);
});

test('sources.fits with 0 sources: valid, 0 rows, the same columns; flux unit normalised to FITS', async () => {
  const path = join(tmp, 'empty.fits');
  await writeSourcesFits(path, [], { apertureRadii: RADII, fluxUnit: 'ADU' });
  const v = fitsverify(path);
  assert.ok(v.warnings === 0 && v.errors === 0, `fitsverify: ${v.warnings} warnings, ${v.errors} errors\n${v.output}`);
  const a = python(ASTROPY_READ, path);
  assert.deepEqual(a.warnings, []);
  assert.equal(a.nrows, 0);
  assert.deepEqual(a.names, NAMES);
  assert.deepEqual(a.units, NAMES.map((n) => expectedUnit(n, 'adu')));
  assert.equal(toCsv([], OPTS), NAMES.join(',') + '\n');
});

test('bad records are refused with the source named, and no file is left behind', async () => {
  const dir = mkdtempSync(join(tmp, 'bad-'));
  const cases: Array<[DiaSource[], RegExp]> = [
    [[source({ id: 5n, apFlux: [1] })], /source 5: 1 aperture fluxes/],
    [[source({ id: 6n, peakX: 10.5 })], /source 6: peak_x = 10.5 is not a 32-bit integer/],
    [[source({ id: 2n ** 63n })], /does not fit in 64 bits/],
  ];
  for (const [srcs, re] of cases) {
    await assert.rejects(writeSourcesFits(join(dir, 'sources.fits'), srcs, OPTS), (e: unknown) => e instanceof DetectError && e.code === 'BAD_INPUT' && re.test(e.message));
    assert.throws(() => toCsv(srcs, OPTS), re);
  }
  assert.deepEqual(readdirSync(dir), []);
  assert.throws(() => catalogFields({ apertureRadii: [12, 12.0] }), /share the column name ap_flux_12_0/);
  assert.equal(apertureTag(12), '12_0');
  assert.equal(apertureTag(12.25), '12_25');
  assert.equal(apertureTag(0.5), '0_5');
  assert.throws(() => apertureTag(1e-7), DetectError);
  assert.equal(fitsFluxUnit('ADU'), 'adu');
  assert.equal(fitsFluxUnit('counts'), 'ct');
  assert.equal(fitsFluxUnit('electrons'), 'electron');
  assert.equal(fitsFluxUnit('nJy'), 'nJy');
  assert.ok(!existsSync(join(dir, 'sources.fits')));
});

test('sources.csv: Python csv reads the FITS column names and every value back', () => {
  const path = join(tmp, 'sources.csv');
  const text = toCsv(SOURCES, OPTS);
  assert.ok(!text.startsWith('#'), 'no comment lines');
  writeFileSync(path, text);
  const rows: string[][] = python(`
import csv, json, sys
with open(sys.argv[1], newline='') as f:
    rows = list(csv.reader(f, strict=True))
for r in rows[1:]:
    for c in r:
        if c not in ('', 'true', 'false'):
            float(c)  # every other cell must be a number Python parses
print(json.dumps(rows))
`, path);
  assert.deepEqual(rows[0], NAMES);
  assert.equal(rows.length, SOURCES.length + 1);
  const fields = catalogFields(OPTS);
  SOURCES.forEach((s, i) =>
    fields.forEach((f, j) => {
      const c = rows[i + 1]![j]!;
      const v = f.get(s);
      const what = `row ${i} ${f.name}`;
      if (f.format === 'K') assert.equal(c, (v as bigint).toString(), what);
      else if (f.format === 'L') assert.equal(c, v ? 'true' : 'false', what);
      else if (v === null || Number.isNaN(v)) assert.equal(c, '', what);
      else assert.ok(Object.is(c === 'inf' ? Infinity : c === '-inf' ? -Infinity : Number(c), v), `${what}: ${c} != ${v}`);
    }),
  );
  assert.equal(rows[1 + 1]![NAMES.indexOf('ra')], '');
  assert.equal(rows[3 + 1]![NAMES.indexOf('snr')], 'inf');
  // RFC 4180 quoting, judged by the same reader.
  const tricky = ['plain', 'a,b', 'say "hi"', 'two\nlines', ''];
  const parsed = python(`
import csv, io, json, sys
print(json.dumps(list(csv.reader(io.StringIO(sys.argv[1]), strict=True))))
`, tricky.map(csvField).join(',') + '\n');
  assert.deepEqual(parsed, [tricky]);
});

/** What a DS9 4.1 region line may be, with the property keys we use or ds9 writes itself. */
const NUM = '-?\\d+(?:\\.\\d+)?';
const PROP = `(?:color=(?:green|red|yellow)|text=\\{[^{}]*\\}|line=[01] [01]|width=\\d+|font="[^"]*"|dash=[01]|point=\\w+|(?:select|highlite|fixed|edit|move|delete|include|source)=[01])`;
const SHAPE = new RegExp(`^(?:circle\\(${NUM},${NUM},${NUM}\\)|line\\(${NUM},${NUM},${NUM},${NUM}\\)|point\\(${NUM},${NUM}\\))(?: # ${PROP}(?: ${PROP})*)?$`);
const GLOBAL = new RegExp(`^global(?: ${PROP})+$`);

test('sources.reg: strict DS9 grammar, colours by polarity, and astropy-regions finds the catalogue positions', () => {
  const text = toDs9Regions(SOURCES);
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  assert.equal(lines[0], '# Region file format: DS9 version 4.1');
  const system = lines.findIndex((l) => /^(image|icrs|fk5)$/.test(l));
  assert.ok(system > 0 && lines[system] === 'image', 'image coordinates declared');
  assert.ok(lines.findIndex((l) => GLOBAL.test(l)) < system, 'global line before the shapes');
  for (const l of lines) assert.ok(l.startsWith('#') || GLOBAL.test(l) || l === 'image' || SHAPE.test(l), `not DS9 grammar: ${l}`);
  // 1-based shift, read off the text itself.
  assert.ok(lines.includes('circle(11.25,21.75,5.5566) # color=green text={1001}'), text);
  assert.ok(lines.includes('line(119.75,80.5,123.25,82.5) # line=0 1 color=yellow'), text);
  assert.equal(lines.filter((l) => l.startsWith('line(')).length, 1, 'only the fitted dipole gets an arrow');

  const path = join(tmp, 'sources.reg');
  writeFileSync(path, text);
  const regs: Array<{ type: string; x?: number; y?: number; r?: number; start?: number[]; end?: number[]; color: string; text?: string }> = python(`
import json, sys, warnings
from regions import Regions
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    regs = Regions.read(sys.argv[1], format='ds9')
# regions 0.7 ignores the DS9 arrow property 'line=0 1', with a warning; anything else is a fault.
odd = [str(w.message) for w in caught if 'line=0 1' not in str(w.message)]
assert not odd, odd
out = []
for r in regs:
    v = r.visual
    d = {'type': type(r).__name__, 'color': v.get('edgecolor', v.get('color')), 'text': r.meta.get('text')}
    if hasattr(r, 'center'):
        d.update(x=float(r.center.x), y=float(r.center.y), r=float(r.radius))
    else:
        d.update(start=[float(r.start.x), float(r.start.y)], end=[float(r.end.x), float(r.end.y)])
    if d['text'] is not None:
        d['text'] = str(d['text'])
    out.append(d)
print(json.dumps(out))
`, path);
  const circles = regs.filter((r) => r.type === 'CirclePixelRegion');
  const labels = lines.filter((l) => l.startsWith('circle(')).map((l) => /text=\{([^}]*)\}/.exec(l)?.[1]);
  assert.equal(circles.length, SOURCES.length);
  SOURCES.forEach((s, i) => {
    const c = circles[i]!;
    // regions converts DS9's 1-based image coordinates to 0-based: it must land on the catalogue x, y.
    assert.ok(Math.abs(c.x! - s.x) < 1e-4 && Math.abs(c.y! - s.y) < 1e-4, `circle ${i} at (${c.x}, ${c.y}), source at (${s.x}, ${s.y})`);
    assert.equal(c.color, s.isDipole ? 'yellow' : s.isNegative ? 'red' : 'green');
    // regions turns a numeric label into a number (ids beyond 2^53 lose digits there): compare the text.
    assert.ok(labels[i] === s.id.toString() && c.text !== null, `label ${labels[i]} for ${s.id}`);
    assert.ok(Math.abs(c.r! - Math.max(2, Math.sqrt(s.footprintArea / Math.PI))) < 1e-4);
  });
  const arrows = regs.filter((r) => r.type === 'LinePixelRegion');
  assert.equal(arrows.length, 1);
  const d = SOURCES[2]!.dipole!;
  assert.deepEqual(arrows[0]!.start, [d.negX, d.negY], 'arrow starts at the negative lobe');
  assert.deepEqual(arrows[0]!.end, [d.posX, d.posY], 'and points at the positive lobe');
  assert.equal(arrows[0]!.color, 'yellow');
  assert.ok(!toDs9Regions(SOURCES, { labels: false }).includes('text='));
});

test('catalogMarkdown documents every column with its unit and LSST equivalent', () => {
  const md = catalogMarkdown({ apertureRadii: RADII, fluxUnit: 'electron' });
  for (const n of NAMES) assert.match(md, new RegExp(`^\\| \`${n}\` \\|`, 'm'));
  assert.match(md, /\| `ap_flux_12_5` \| float64 \| electron \| .* \| `base_CircularApertureFlux_12_5_instFlux` \|/);
  assert.match(md, /\| `ixx` \| float64 \| pix2 \|/);
});
