/**
 * DIA source catalogue outputs: sources.fits (BINTABLE 'DIASOURCES'), sources.csv and sources.reg
 * (DS9). One schema (catalogFields) drives all of them, so the FITS and CSV columns always agree in
 * name and order; catalogMarkdown documents it, with the LSST field each column corresponds to.
 *
 * Conventions:
 *  - Positions are 0-based parent-frame pixels as in source.ts (LSST: centre of the first pixel is
 *    (0, 0)); only the DS9 file shifts them to 1-based image coordinates.
 *  - Null in a floating-point column is NaN in FITS (FITS 4.0 §7.3: TNULL is for integer columns
 *    only; IEEE NaN marks undefined floats) and an empty field in CSV. Unknown ra/dec and every
 *    dipole column of a source without a dipole fit are null. No integer column can be null (the
 *    record type has no null integers), so none carries TNULL; a non-integer there is refused.
 *  - Booleans: FITS L columns; CSV `true` / `false`.
 */
import { type ColumnInput } from '../fits/bintable.ts';
import { Header, type Card } from '../fits/header.ts';
import { FitsWriter } from '../fits/writer.ts';
import { FileSink, type ByteSink } from '../fits/sink.ts';
import { DetectError } from './config.ts';
import type { DiaSource, DipoleFit, SourceFlags } from './source.ts';

export const CATALOG_EXTNAME = 'DIASOURCES';

export interface CatalogOptions {
  /** The radii (px) the apFlux / apFluxErr arrays of every source follow, in that order. */
  apertureRadii: readonly number[];
  /** Unit of the difference image's pixels (its BUNIT), e.g. 'adu' or 'electron'. Default 'adu'. */
  fluxUnit?: string;
  /** Provenance cards for the primary HDU of sources.fits. */
  header?: Header;
}

type Value = bigint | number | boolean | null;

/** One catalogue column: K int64, D float64 (null → NaN), J int32, L logical. */
export interface CatalogField {
  name: string;
  format: 'K' | 'D' | 'J' | 'L';
  unit?: string;
  /** Short enough to fit the TTYPEn comment (checked by the tests through astropy). */
  description: string;
  /** The LSST (ip_diffim / meas_base / APDB DiaSource) field this column corresponds to. */
  lsst: string;
  get(s: DiaSource): Value;
}

// ---------------------------------------------------------------------------------------------
// Schema

/**
 * Aperture radius as it appears in a column name, as LSST spells it (base_CircularApertureFlux_
 * 12_0_instFlux): one decimal, '.' → '_'. Radii that one decimal would not round-trip keep all
 * their digits (12.25 → 12_25) so that two radii never share a name.
 */
export function apertureTag(r: number): string {
  const one = r.toFixed(1);
  const tag = (Number(one) === r ? one : String(r)).replace('.', '_');
  if (!(r > 0) || !/^\d+_\d+$/.test(tag)) throw new DetectError('BAD_INPUT', `aperture radius ${r} cannot name a catalogue column`);
  return tag;
}

/**
 * The unit string as FITS (and so astropy's FITS unit parser) spells it: BUNIT values such as
 * 'ADU' or 'counts' are common but not standard. 'electron' has no FITS-standard spelling; it is
 * kept (astropy reads it as an unrecognised unit with a UnitsWarning).
 */
export function fitsFluxUnit(unit: string): string {
  const u = unit.trim();
  const l = u.toLowerCase();
  if (l === 'adu' || l === 'adus') return 'adu';
  if (['ct', 'cts', 'count', 'counts'].includes(l)) return 'ct';
  if (['electron', 'electrons', 'e-', 'e'].includes(l)) return 'electron';
  return u;
}

const FLAG_COLUMNS: { [K in keyof SourceFlags]: { name: string; description: string; lsst: string } } = {
  edge: { name: 'flag_edge', description: 'PSF stamp or aperture off image/on EDGE', lsst: 'base_PixelFlags_flag_edge' },
  saturatedCenter: { name: 'flag_saturated_center', description: 'SAT at the centroid pixel', lsst: 'base_PixelFlags_flag_saturatedCenter' },
  satTemplateCenter: { name: 'flag_sat_template_center', description: 'SAT_TEMPLATE at the centroid pixel', lsst: 'PixelFlags masksFpCenter SAT_TEMPLATE' },
  noData: { name: 'flag_no_data', description: 'NO_DATA inside the PSF-fit stamp', lsst: 'base_PixelFlags_flag_nodata' },
  interpolatedCenter: { name: 'flag_interpolated_center', description: 'INTRP in 3x3 round centroid', lsst: 'base_PixelFlags_flag_interpolatedCenter' },
  crCenter: { name: 'flag_cr_center', description: 'CR in 3x3 round the centroid', lsst: 'base_PixelFlags_flag_crCenter' },
  psfFluxFailed: { name: 'flag_psf_flux_failed', description: 'PSF flux not measured', lsst: 'base_PsfFlux_flag' },
  dipoleFitFailed: { name: 'flag_dipole_fit_failed', description: 'dipole fit failed or was skipped', lsst: 'ip_diffim_DipoleFit_flag' },
};

/** Columns of the catalogue, in order. */
export function catalogFields(opts: Pick<CatalogOptions, 'apertureRadii' | 'fluxUnit'>): CatalogField[] {
  const flux = fitsFluxUnit(opts.fluxUnit ?? 'adu');
  const D = (name: string, unit: string | undefined, description: string, lsst: string, get: (s: DiaSource) => number | null): CatalogField => ({ name, format: 'D', unit, description, lsst, get });
  const J = (name: string, unit: string | undefined, description: string, lsst: string, get: (s: DiaSource) => number): CatalogField => ({ name, format: 'J', unit, description, lsst, get });
  const L = (name: string, description: string, lsst: string, get: (s: DiaSource) => boolean): CatalogField => ({ name, format: 'L', description, lsst, get });
  const dip = (name: string, unit: string | undefined, description: string, lsst: string, key: keyof DipoleFit) =>
    D(name, unit, description, lsst, (s) => (s.dipole ? s.dipole[key] : null));

  const tags = opts.apertureRadii.map(apertureTag);
  const dup = tags.find((t, i) => tags.indexOf(t) !== i);
  if (dup) throw new DetectError('BAD_INPUT', `two aperture radii share the column name ap_flux_${dup}`);
  const apertures = tags.flatMap((t, i): CatalogField[] => {
    const r = opts.apertureRadii[i]!;
    const lsst = `base_CircularApertureFlux_${t}_instFlux`;
    return [
      { name: `ap_flux_${t}`, format: 'D', unit: flux, description: `flux in a circular aperture r=${r} px`, lsst, get: (s) => s.apFlux[i]! },
      { name: `ap_flux_${t}_err`, format: 'D', unit: flux, description: `1-sigma error of ap_flux_${t}`, lsst: `${lsst}Err`, get: (s) => s.apFluxErr[i]! },
    ];
  });

  return [
    { name: 'id', format: 'K', description: 'source id (exposure id high bits, counter)', lsst: 'id (APDB diaSourceId)', get: (s) => s.id },
    D('x', 'pix', 'centroid x, 0-based (first pixel centre 0)', 'slot_Centroid_x (APDB x)', (s) => s.x),
    D('y', 'pix', 'centroid y, 0-based (first pixel centre 0)', 'slot_Centroid_y (APDB y)', (s) => s.y),
    D('ra', 'deg', 'right ascension; NaN without a WCS', 'coord_ra (APDB ra)', (s) => s.ra),
    D('dec', 'deg', 'declination; NaN without a WCS', 'coord_dec (APDB dec)', (s) => s.dec),
    J('peak_x', 'pix', 'detection peak pixel x, 0-based', 'Footprint peak getIx()', (s) => s.peakX),
    J('peak_y', 'pix', 'detection peak pixel y, 0-based', 'Footprint peak getIy()', (s) => s.peakY),
    D('significance', undefined, 'signed peak significance (sigma)', 'Footprint peak "significance"', (s) => s.significance),
    D('psf_flux', flux, 'PSF-fit flux on the difference', 'base_PsfFlux_instFlux (APDB psfFlux)', (s) => s.psfFlux),
    D('psf_flux_err', flux, '1-sigma error of psf_flux', 'base_PsfFlux_instFluxErr (APDB psfFluxErr)', (s) => s.psfFluxErr),
    ...apertures,
    D('ixx', 'pix2', 'second moment xx', 'slot_Shape_xx (APDB ixx)', (s) => s.ixx),
    D('iyy', 'pix2', 'second moment yy', 'slot_Shape_yy (APDB iyy)', (s) => s.iyy),
    D('ixy', 'pix2', 'second moment xy', 'slot_Shape_xy (APDB ixy)', (s) => s.ixy),
    D('snr', undefined, 'psf_flux / psf_flux_err', 'APDB snr', (s) => s.snr),
    L('is_negative', 'negative difference (template brighter)', 'is_negative', (s) => s.isNegative),
    L('is_dipole', 'classified as a dipole', 'ip_diffim_ClassificationDipole_value (APDB isDipole)', (s) => s.isDipole),
    dip('dipole_pos_flux', flux, 'dipole fit: positive lobe flux', 'ip_diffim_DipoleFit_pos_instFlux', 'posFlux'),
    dip('dipole_pos_flux_err', flux, 'error of dipole_pos_flux', 'ip_diffim_DipoleFit_pos_instFluxErr', 'posFluxErr'),
    dip('dipole_neg_flux', flux, 'dipole fit: |negative lobe flux|', 'ip_diffim_DipoleFit_neg_instFlux', 'negFlux'),
    dip('dipole_neg_flux_err', flux, 'error of dipole_neg_flux', 'ip_diffim_DipoleFit_neg_instFluxErr', 'negFluxErr'),
    dip('dipole_pos_x', 'pix', 'dipole fit: positive lobe x', 'ip_diffim_DipoleFit_pos_centroid_x', 'posX'),
    dip('dipole_pos_y', 'pix', 'dipole fit: positive lobe y', 'ip_diffim_DipoleFit_pos_centroid_y', 'posY'),
    dip('dipole_neg_x', 'pix', 'dipole fit: negative lobe x', 'ip_diffim_DipoleFit_neg_centroid_x', 'negX'),
    dip('dipole_neg_y', 'pix', 'dipole fit: negative lobe y', 'ip_diffim_DipoleFit_neg_centroid_y', 'negY'),
    dip('dipole_separation', 'pix', 'dipole fit: lobe separation', 'ip_diffim_DipoleFit_separation', 'separation'),
    dip('dipole_orientation', 'deg', 'neg->pos direction, CCW from +x', 'ip_diffim_DipoleFit_orientation', 'orientation'),
    dip('dipole_chi2dof', undefined, 'dipole fit: chi2 per degree of freedom', 'ip_diffim_DipoleFit_chi2dof', 'chi2dof'),
    J('footprint_area', 'pix2', 'pixels in the merged, grown footprint', 'base_FootprintArea_value', (s) => s.footprintArea),
    J('n_pos_peaks', undefined, 'positive peaks in the footprint', 'merged footprint positive peaks', (s) => s.nPositivePeaks),
    J('n_neg_peaks', undefined, 'negative peaks in the footprint', 'merged footprint negative peaks', (s) => s.nNegativePeaks),
    D('science_flux', flux, 'forced PSF flux on the science image', 'ip_diffim_forced_PsfFlux_instFlux (APDB scienceFlux)', (s) => s.scienceFlux),
    D('science_flux_err', flux, 'error of science_flux', 'ip_diffim_forced_PsfFlux_instFluxErr (APDB scienceFluxErr)', (s) => s.scienceFluxErr),
    D('template_flux', flux, 'forced PSF flux on the matched template', 'APDB templateFlux', (s) => s.templateFlux),
    D('template_flux_err', flux, 'error of template_flux', 'APDB templateFluxErr', (s) => s.templateFluxErr),
    ...(Object.keys(FLAG_COLUMNS) as Array<keyof SourceFlags>).map((k) => L(FLAG_COLUMNS[k].name, FLAG_COLUMNS[k].description, FLAG_COLUMNS[k].lsst, (s) => s.flags[k])),
  ];
}

/** Refuse records the columns cannot hold, naming the source and field (before any file exists). */
function checkSources(sources: readonly DiaSource[], nAp: number): void {
  for (const s of sources) {
    if (s.apFlux.length !== nAp || s.apFluxErr.length !== nAp) {
      throw new DetectError('BAD_INPUT', `source ${s.id}: ${s.apFlux.length} aperture fluxes and ${s.apFluxErr.length} errors for ${nAp} radii`);
    }
    if (s.id < -(2n ** 63n) || s.id >= 2n ** 63n) throw new DetectError('BAD_INPUT', `source id ${s.id} does not fit in 64 bits`);
  }
}

function int32(v: number, field: string, s: DiaSource): number {
  if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw new DetectError('BAD_INPUT', `source ${s.id}: ${field} = ${v} is not a 32-bit integer`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// FITS

/** The BINTABLE columns for encodeTable / FitsWriter.writeTable. */
export function catalogColumns(sources: readonly DiaSource[], opts: CatalogOptions): ColumnInput[] {
  const fields = catalogFields(opts);
  checkSources(sources, opts.apertureRadii.length);
  const n = sources.length;
  return fields.map((f): ColumnInput => {
    const base = { name: f.name, format: f.format, unit: f.unit, description: f.description };
    switch (f.format) {
      case 'K':
        return { ...base, values: BigInt64Array.from(sources, (s) => f.get(s) as bigint) };
      case 'J':
        return { ...base, values: Int32Array.from(sources, (s) => int32(f.get(s) as number, f.name, s)) };
      case 'L':
        return { ...base, values: sources.map((s) => f.get(s) as boolean) };
      case 'D': {
        const v = new Float64Array(n);
        sources.forEach((s, k) => (v[k] = (f.get(s) as number | null) ?? NaN));
        return { ...base, values: v };
      }
    }
  });
}

/** Cards of the DIASOURCES header: the conventions a reader needs and cannot see in the columns. */
function tableCards(): Card[] {
  const c = (text: string): Card => ({ key: 'COMMENT', kind: 'commentary', value: text, comment: '' });
  return [
    c('DIA sources measured on the difference image (diffim).'),
    c('x, y, peak_x, peak_y and dipole lobe positions are 0-based pixels: the'),
    c('centre of the first pixel is (0, 0) as in LSST; FITS/ds9 pixels are +1.'),
    c('Null floating-point values are NaN (FITS 4.0 sec. 7.3): ra/dec without'),
    c('a WCS, dipole_* without a dipole fit. Integer columns are never null.'),
  ];
}

/**
 * Write sources.fits: empty primary HDU with the provenance cards, then the DIASOURCES table
 * (0 rows when there are no sources). CHECKSUM/DATASUM in both HDUs; the file appears only
 * when complete.
 */
export async function writeSourcesFits(path: string, sources: readonly DiaSource[], opts: CatalogOptions): Promise<void> {
  const columns = catalogColumns(sources, opts); // validates before the file is created
  await writeSourcesTo(new FitsWriter(await FileSink.create(path), { checksum: true }), columns, sources.length, opts);
}

/** writeSourcesFits into any ByteSink (a StorageSink: S3 or local storage); the same bytes. */
export async function writeSourcesToSink(sink: ByteSink, sources: readonly DiaSource[], opts: CatalogOptions): Promise<void> {
  let columns: ColumnInput[];
  try {
    columns = catalogColumns(sources, opts);
  } catch (e) {
    await sink.abort().catch(() => undefined);
    throw e;
  }
  // Tables are in memory, so their checksums go out with the header: no patching needed.
  await writeSourcesTo(new FitsWriter(sink, { checksum: 'given' }), columns, sources.length, opts);
}

async function writeSourcesTo(w: FitsWriter, columns: ColumnInput[], nrows: number, opts: CatalogOptions): Promise<void> {
  try {
    await w.writeEmptyPrimary(opts.header ?? new Header());
    await w.writeTable(columns, nrows, new Header(tableCards()), CATALOG_EXTNAME);
    await w.close();
  } catch (e) {
    await w.abort();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// CSV

/** RFC 4180: quote a field holding a comma, a quote or a line break; double inner quotes. */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One cell: shortest round-trip numbers, '' for null/NaN, inf/-inf as Python and pandas read them. */
function csvValue(v: Value): string {
  if (v === null) return '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return '';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  return String(v);
}

/**
 * sources.csv: a header row with the FITS column names, then one row per source; LF line ends.
 * No comment lines (many readers refuse them): catalogMarkdown documents the columns.
 */
export function toCsv(sources: readonly DiaSource[], opts: Pick<CatalogOptions, 'apertureRadii' | 'fluxUnit'>): string {
  const fields = catalogFields(opts);
  checkSources(sources, opts.apertureRadii.length);
  const lines = [fields.map((f) => csvField(f.name)).join(',')];
  for (const s of sources) {
    lines.push(fields.map((f) => csvField(csvValue(f.format === 'J' ? int32(f.get(s) as number, f.name, s) : f.get(s)))).join(','));
  }
  return lines.join('\n') + '\n';
}

/** The column documentation as a Markdown table (for a README beside the outputs). */
export function catalogMarkdown(opts: Pick<CatalogOptions, 'apertureRadii' | 'fluxUnit'>): string {
  const type = { K: 'int64', D: 'float64', J: 'int32', L: 'bool' } as const;
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const rows = catalogFields(opts).map((f) => `| \`${f.name}\` | ${type[f.format]} | ${f.unit ?? ''} | ${cell(f.description)} | \`${f.lsst}\` |`);
  return [
    '| column | type | unit | description | LSST equivalent |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    'Positions are 0-based pixels (centre of the first pixel is (0, 0)). Null values: NaN in',
    'sources.fits, an empty field in sources.csv (ra/dec without a WCS; dipole_* without a dipole fit).',
    'Booleans are FITS logicals and `true`/`false` in the CSV.',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// DS9 regions

export interface RegionOptions {
  /** Label each source's circle with its id. Default true. */
  labels?: boolean;
}

/** A region coordinate: 4 decimals are plenty for display, and never exponent notation. */
function regNum(v: number): string {
  return String(Number(v.toFixed(4)));
}

/**
 * sources.reg for DS9 4.1 in image coordinates. Circles: green positive, red negative, yellow
 * dipole, radius that of a disc of the footprint's area (≥ 2 px). A fitted dipole also gets a
 * yellow arrow from its negative to its positive lobe.
 */
export function toDs9Regions(sources: readonly DiaSource[], opts: RegionOptions = {}): string {
  const labels = opts.labels ?? true;
  // DS9 image coordinates are 1-based like FITS (first pixel centre at 1,1); ours are 0-based.
  const px = (v: number) => regNum(v + 1);
  const out = [
    '# Region file format: DS9 version 4.1',
    '# diffim DIA sources: green positive, red negative, yellow dipole (arrow neg -> pos lobe)',
    '# image coordinates are 1-based: catalogue x, y (0-based) + 1',
    'global color=green width=1 font="helvetica 10 normal roman" select=1 highlite=1 dash=0 fixed=0 edit=1 move=1 delete=1 include=1 source=1',
    'image',
  ];
  for (const s of sources) {
    if (!Number.isFinite(s.x) || !Number.isFinite(s.y)) {
      out.push(`# source ${s.id}: no finite position`);
      continue;
    }
    const color = s.isDipole ? 'yellow' : s.isNegative ? 'red' : 'green';
    const r = Math.max(2, Math.sqrt(Math.max(0, s.footprintArea) / Math.PI));
    out.push(`circle(${px(s.x)},${px(s.y)},${regNum(r)}) # color=${color}${labels ? ` text={${s.id}}` : ''}`);
    const d = s.dipole;
    if (s.isDipole && d && [d.negX, d.negY, d.posX, d.posY].every(Number.isFinite)) {
      out.push(`line(${px(d.negX)},${px(d.negY)},${px(d.posX)},${px(d.posY)}) # line=0 1 color=yellow`);
    }
  }
  return out.join('\n') + '\n';
}
