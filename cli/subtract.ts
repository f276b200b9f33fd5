/**
 * `diffim subtract` and `diffim demo`: files in, files out, over the in-memory `subtract()`
 * (core/subtract/subtract.ts). Reads two exposures, fits the kernel, subtracts, and writes
 * DIR/difference.fits (LSST-style MEF with the science's WCS and provenance), DIR/kernel.json and
 * DIR/qa.json — under temporary names renamed at the end, so a failure leaves nothing partial.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, unlinkSync } from 'node:fs';
import { access, constants, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Header } from '../core/fits/header.ts';
import { readExposure, writeExposure, type Exposure, type ReadExposureOptions } from '../core/image/exposure.ts';
import { KernelError, PRESETS, resolveKernelConfig, serializeSolution, type KernelConfig, type KernelPreset } from '../core/kernel/index.ts';
import { subtract, type SubtractResult } from '../core/subtract/subtract.ts';
import type { SubtractQa } from '../core/subtract/qa.ts';
import { DEFAULT_DETECT_CONFIG, DetectError, parseWcs, resolveDetectConfig, type DetectConfig, type DetectQa } from '../core/detect/index.ts';
import { toCsv, toDs9Regions, writeSourcesFits } from '../core/detect/catalog.ts';
import { ConfigError, EXIT, EXIT_HELP, IoError, UsageError } from './errors.ts';
import { runPipeline, type ProgressEvent } from '../core/engine/engine.ts';
import { OUTPUT_NAMES } from '../core/pipeline/stitch.ts';
import { parseLocation } from '../core/storage/index.ts';
import { differenceHeader, fitsName, headerExposureId, headerZeroPoint, sourcesHeader, VERSION } from '../core/pipeline/provenance.ts';

export { VERSION, differenceHeader, fitsName };

const PRESET_NAMES = Object.keys(PRESETS) as KernelPreset[];
/** --mode values: the kernel's convolution modes, plus preconvolve (= convolveTemplate with the kernel option preconvolve). */
const MODES = ['convolveTemplate', 'convolveScience', 'auto', 'preconvolve'] as const;
const KERNEL_KEYS = Object.keys(resolveKernelConfig('default'));

function wrap(words: string[], indent: string, width = 100): string {
  const lines: string[] = [];
  let line = indent;
  for (const w of words) {
    if (line.length + w.length + 2 > width && line.trim()) {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += w + ', ';
  }
  lines.push(line.replace(/, $/, ''));
  return lines.join('\n');
}

export const SUBTRACT_HELP = `diffim subtract — PSF-match a template to a science image and subtract it

Usage:
  diffim subtract --science FILE --template FILE --out DIR [options]

Inputs (both on the same pixel grid: same size, already registered):
  --science FILE       science exposure: an LSST-style MEF (IMAGE, MASK, VARIANCE) or a plain image,
                       whose variance then comes from GAIN/RDNOISE (else from image statistics, with a
                       warning) and whose pixels at or above SATURATE are flagged SAT
  --template FILE      template (reference) exposure, same formats
  --out DIR            output directory, created if missing; outputs already there are replaced

Options:
  --preset NAME        kernel preset: ${PRESET_NAMES.join(' | ')} (default: default)
  --mode MODE          which image is convolved: ${MODES.join(' | ')}
                       (default: convolveTemplate; auto, ip_diffim's rule: the template unless its
                       PSF is wider in both x and y; preconvolve, ip_diffim's
                       AlardLuptonPreconvolveSubtract: the science is convolved with its own PSF (an
                       empirical PSF image from its stars), the template is matched to that, and
                       difference.fits holds the SCORE image P*S - (K*T + B) instead of the
                       difference (primary header DIFFTYPE = 'SCORE'): IMAGE/sqrt(VARIANCE) is the
                       point-source S/N, to be thresholded directly, without further smoothing; a
                       template as wide as the science or wider needs no deconvolution; same as
                       --set preconvolve=true)
  --set KEY=VALUE      override one kernel configuration key (repeatable); VALUE is read as JSON when
                       it parses (21, 0.5, true, [4,2,2]) and as a string otherwise (auto); an unknown
                       key or a bad value is a usage error (exit 2); detect.KEY=VALUE sets a detection
                       key instead (detect.thresholdValue=5, detect.apertureRadii=[6,12])
  --config FILE.json   {"preset": NAME, "kernel": {KEY: VALUE, ...}, "detect": {KEY: VALUE, ...},
                       "decorrelate": true|false}; --preset, --set, --mode and --no-decorrelate win
                       over the file
  --no-detect          do not detect and measure DIA sources (default: detect, write sources.*)
  --exposure-id N      integer put in the high bits of the 64-bit source ids (default: the science
                       header's EXPID, EXPNUM or VISIT when an integer, else 0)
  --zero-point ZP      magnitude of 1 ADU in the difference, for qa.json's limiting magnitude (default:
                       the science header's MAGZERO, MAGZPT, PHOTZP or ZP when present)
  --no-decorrelate     keep the difference's correlated noise (default: whiten it, as ip_diffim's
                       doDecorrelation, DMTN-021; for a score image: skip its likelihood-image
                       correction for a noisy template, DMTN-179)
  --json               print the QA document (the content of qa.json) on stdout
Tiled runs (the engine: plan → fit per tile → solve → convolve per tile → stitch; used when any of
these is given or a location is an s3:// URL; the same outputs plus _DONE, written last):
  --tile-size N        tile core side in pixels, a multiple of the 128-px spatial cell (default 2048)
  --workers N          worker threads for the per-tile steps (default: the machine's cores)
  --endpoint URL       S3-compatible server for s3:// locations (MinIO, s3rver…); credentials and
                       region from the AWS environment (AWS_ACCESS_KEY_ID, AWS_REGION, …)
  --keep-work          keep the run's intermediate documents under DIR/.diffim-work/<run id>/
  --progress MODE      bar (default on a terminal), lines (default otherwise), json (one JSON
                       object per event on stderr) or none
  --quiet              no progress, warnings or summary on stderr (errors are still reported)
  -h, --help           this text

Outputs in DIR (written under temporary names and renamed at the end: on failure nothing is left
at these paths):
  difference.fits      the difference D = matched science − matched template (or, with --mode
                       preconvolve, the score image), an LSST-style MEF with CHECKSUM/DATASUM:
                       primary header with provenance (DIFFIM version, SCIENCE and TEMPLATE file
                       names, DIFFTYPE DIFFERENCE or SCORE, DIFFMODE, PRESET, KSUM kernel sum,
                       DECORR; for a score PSFMODEL, PSFNSTAR, PSFFWHM of the science PSF) and the
                       science's EXPTIME, FILTER, OBJECT; IMAGE (float32), MASK (int32, MP_* mask-plane
                       cards), VARIANCE (float32), each with the science's WCS (CTYPE/CRVAL/CRPIX/CD/PC/
                       CDELT/CUNIT/PV, SIP A_/B_/AP_/BP_, RADESYS, EQUINOX, LONPOLE/LATPOLE, MJD-OBS,
                       DATE-OBS)
  kernel.json          the kernel solution: basis, spatial coefficients, background, every candidate
                       with its fate, fit QA, the full configuration
  qa.json              QA (docs/METRICS.md): kernelSum, noise.robustStdZ (robust std of z = D/σ over
                       source-free pixels; 1 is ideal), artefactRate (|z| > 5), timings, warnings,
                       detection (numbers of positive, negative and dipole sources, mask-plane
                       fractions, depth: 5σ limiting flux and magnitude), plus the inputs, the
                       configuration and the output paths
  sources.fits         DIA sources: BINTABLE DIASOURCES, one row per source, with units and column
                       descriptions (id, x, y — 0-based pixel centroid, LSST's convention — ra, dec when
                       the science has a TAN, TAN-SIP or TPV WCS, PSF and aperture fluxes with errors,
                       moments, S/N, is_negative, is_dipole and the dipole fit, forced fluxes on the
                       science and matched template, flags); NaN where a value is unknown
  sources.csv          the same columns as CSV (empty field = unknown)
  sources.reg          DS9 regions in image coordinates (1-based): green positive, red negative,
                       yellow dipoles with an arrow from the negative to the positive lobe

Detection keys for detect.KEY and "detect" (defaults in core/detect/config.ts):
${wrap(Object.keys(DEFAULT_DETECT_CONFIG), '  ')}

Kernel configuration keys for --set and "kernel" (ip_diffim names; defaults and meaning in
core/kernel/config.ts):
${wrap(KERNEL_KEYS, '  ')}

${EXIT_HELP}`;

export const DEMO_HELP = `diffim demo — subtract the bundled real pair and say where the result is

Usage:
  diffim demo [--out DIR] [--json] [--quiet]

Runs \`diffim subtract\` (preset default, pixels ≥ 50000 ADU flagged saturated) on the pyDIA
KB13475 pair in test/data/pydia-kb13475-saao1m/pairA (SAAO 1.0 m, a crowded Galactic-bulge field;
science at the peak of a microlensing event, template after it). The brightened target is near pixel
(272, 223) (0-based x, y) of difference.fits.

  --out DIR            output directory (default: ./diffim-demo-output)
  --json               print the QA document on stdout
  --quiet              no progress or summary on stderr
  -h, --help           this text

Outputs: DIR/difference.fits, DIR/kernel.json, DIR/qa.json, DIR/sources.fits, .csv, .reg (see
diffim subtract --help).

${EXIT_HELP}`;

/** Everything one run needs, after the command line and the config file are resolved. */
export interface SubtractJob {
  science: string;
  template: string;
  out: string;
  preset: KernelPreset;
  /** Kernel configuration overrides (validated). */
  kernel: Partial<KernelConfig>;
  decorrelate: boolean;
  /** Detection overrides (validated); null: no detection. */
  detect: Partial<DetectConfig> | null;
  exposureId?: number;
  zeroPoint?: number;
  configFile?: string;
  /** Options for reading both exposures (the demo flags saturation). */
  read?: ReadExposureOptions;
  json: boolean;
  quiet: boolean;
}

export interface SubtractOutputs {
  difference: string;
  kernel: string;
  qa: string;
  sources?: string;
  sourcesCsv?: string;
  sourcesReg?: string;
}

/** What qa.json says about preconvolution (present only for a score image). */
export interface PreconvolutionQa {
  difference: 'score';
  psf: { method: 'empirical' | 'gaussian'; nStars: number; size: number; fwhm: number; noiseL2: number; clippedFraction: number; x: number; y: number };
  targetFwhm: number;
  scoreCorrection?: { size: number; cropLoss: number };
}

export type QaDocument = SubtractQa & {
  diffim: string;
  detection?: DetectQa & { nSources: number; exposureId: number; zeroPoint: number | null; wcs: string };
  preconvolution?: PreconvolutionQa;
  inputs: { science: string; template: string; width: number; height: number; x0: number; y0: number; scienceVariance: string; templateVariance: string; warnings: string[] };
  config: { preset: KernelPreset; kernel: Partial<KernelConfig>; decorrelate: boolean; detect: Partial<DetectConfig> | null; configFile?: string };
  outputs: SubtractOutputs;
};

function parse(args: string[], options: NonNullable<Parameters<typeof parseArgs>[0]>['options']): { values: Record<string, string | boolean | (string | boolean)[] | undefined> } {
  try {
    return { values: parseArgs({ args, options, allowPositionals: false, strict: true }).values };
  } catch (e) {
    throw new UsageError(`${(e as Error).message.replace(/\s*\n\s*/g, ' ')} (try diffim ${options && 'science' in options ? 'subtract' : 'demo'} --help)`);
  }
}

/** `--set key=value`: JSON when it parses (numbers, booleans, arrays, quoted strings), else the raw string. */
export function parseSetValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function oneLine(s: string, max = 200): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

interface ConfigFile {
  preset?: KernelPreset;
  kernel?: Partial<KernelConfig>;
  detect?: Partial<DetectConfig>;
  decorrelate?: boolean;
}

/** Read and check a --config file; every failure is one ConfigError naming the file. */
export async function readConfigFile(path: string): Promise<ConfigFile> {
  const fail = (why: string): never => {
    throw new ConfigError(`--config ${path}: ${why}`);
  };
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot read (${code ?? (e as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    fail(`not valid JSON (${oneLine((e as Error).message, 120)})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail('must hold a JSON object {"preset", "kernel", "detect", "decorrelate"}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['preset', 'kernel', 'detect', 'decorrelate'].includes(k)) fail(`unknown key ${JSON.stringify(k)} (allowed: preset, kernel, detect, decorrelate)`);
  if (o.detect !== undefined && (o.detect === null || typeof o.detect !== 'object' || Array.isArray(o.detect))) fail('detect must be an object of detection configuration keys');
  if (o.detect !== undefined) {
    try {
      resolveDetectConfig(o.detect as Partial<DetectConfig>);
    } catch (e) {
      if (e instanceof DetectError) fail(e.message);
      throw e;
    }
  }
  if (o.preset !== undefined && !PRESET_NAMES.includes(o.preset as KernelPreset)) fail(`preset must be one of ${PRESET_NAMES.join(', ')}, got ${JSON.stringify(o.preset)}`);
  if (o.kernel !== undefined && (o.kernel === null || typeof o.kernel !== 'object' || Array.isArray(o.kernel))) fail('kernel must be an object of kernel configuration keys');
  if (o.decorrelate !== undefined && typeof o.decorrelate !== 'boolean') fail(`decorrelate must be true or false, got ${JSON.stringify(o.decorrelate)}`);
  const cfg: ConfigFile = { preset: o.preset as KernelPreset | undefined, kernel: o.kernel as Partial<KernelConfig> | undefined, detect: o.detect as Partial<DetectConfig> | undefined, decorrelate: o.decorrelate as boolean | undefined };
  try {
    resolveKernelConfig(cfg.preset ?? 'default', cfg.kernel ?? {});
  } catch (e) {
    if (e instanceof KernelError) fail(e.message);
    throw e;
  }
  return cfg;
}

/** `diffim subtract …` */
export async function subtractCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    science: { type: 'string' },
    template: { type: 'string' },
    out: { type: 'string' },
    preset: { type: 'string' },
    mode: { type: 'string' },
    set: { type: 'string', multiple: true },
    config: { type: 'string' },
    'no-decorrelate': { type: 'boolean' },
    'no-detect': { type: 'boolean' },
    'exposure-id': { type: 'string' },
    'zero-point': { type: 'string' },
    'tile-size': { type: 'string' },
    workers: { type: 'string' },
    endpoint: { type: 'string' },
    'keep-work': { type: 'boolean' },
    progress: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(SUBTRACT_HELP + '\n');
    return EXIT.OK;
  }
  const str = (k: string) => values[k] as string | undefined;
  for (const k of ['science', 'template', 'out'] as const) {
    const v = str(k);
    if (v === undefined) throw new UsageError(`subtract needs --${k} ${k === 'out' ? 'DIR' : 'FILE'} (try diffim subtract --help)`);
    if (v === '') throw new UsageError(`--${k} must not be empty`);
  }
  const preset = str('preset');
  if (preset !== undefined && !PRESET_NAMES.includes(preset as KernelPreset)) throw new UsageError(`--preset must be one of ${PRESET_NAMES.join(', ')}, got '${preset}'`);
  const mode = str('mode');
  if (mode !== undefined && !(MODES as readonly string[]).includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}, got '${mode}'`);
  const sets: Record<string, unknown> = {};
  const detectSets: Record<string, unknown> = {};
  for (const s of (values.set as string[] | undefined) ?? []) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set expects KEY=VALUE, got '${s}'`);
    const key = s.slice(0, eq).trim();
    const value = parseSetValue(s.slice(eq + 1).trim());
    if (key.startsWith('detect.')) detectSets[key.slice(7)] = value;
    else sets[key] = value;
  }
  const exposureId = str('exposure-id');
  if (exposureId !== undefined && !/^\d{1,12}$/.test(exposureId)) throw new UsageError(`--exposure-id must be a non-negative integer (at most 12 digits), got '${exposureId}'`);
  const zeroPoint = str('zero-point');
  if (zeroPoint !== undefined && !Number.isFinite(Number(zeroPoint))) throw new UsageError(`--zero-point must be a number, got '${zeroPoint}'`);
  // Unknown keys on the command line are refused first; the file is then checked alone (its own
  // exit code), and a bad value in the merge is blamed on the command line.
  const modeKeys = mode === 'preconvolve' ? { mode: 'convolveTemplate', preconvolve: true } : mode ? { mode } : {};
  const cliOnly = { ...sets, ...modeKeys } as Partial<KernelConfig>;
  for (const [k, v] of Object.entries(cliOnly)) if (!KERNEL_KEYS.includes(k)) checkCli('default', { [k]: v });
  const configFile = str('config');
  const file = configFile !== undefined ? await readConfigFile(configFile) : {};
  const finalPreset = (preset as KernelPreset | undefined) ?? file.preset ?? 'default';
  const kernel = { ...(file.kernel ?? {}), ...cliOnly };
  checkCli(finalPreset, kernel);
  const detect = values['no-detect'] ? null : { ...(file.detect ?? {}), ...detectSets } as Partial<DetectConfig>;
  if (detect) {
    try {
      resolveDetectConfig(detect);
    } catch (e) {
      if (e instanceof DetectError) throw new UsageError(e.message);
      throw e;
    }
  }
  const tileSize = str('tile-size');
  if (tileSize !== undefined && !/^\d{1,6}$/.test(tileSize)) throw new UsageError(`--tile-size must be a positive integer (pixels), got '${tileSize}'`);
  const workers = str('workers');
  if (workers !== undefined && !/^\d{1,3}$/.test(workers)) throw new UsageError(`--workers must be a positive integer, got '${workers}'`);
  const progress = str('progress');
  if (progress !== undefined && !['bar', 'lines', 'json', 'none'].includes(progress)) throw new UsageError(`--progress must be bar, lines, json or none, got '${progress}'`);
  const remote = [str('science'), str('template'), str('out')].some((v) => /^s3:\/\//i.test(v!));
  const tiled = tileSize !== undefined || workers !== undefined || remote;
  if (tiled && mode === 'preconvolve') throw new UsageError('--mode preconvolve runs in memory only: drop --tile-size/--workers (and use local files)');
  if (!tiled && (str('endpoint') !== undefined || values['keep-work'])) throw new UsageError('--endpoint and --keep-work apply to tiled runs (--tile-size, --workers or s3:// locations)');
  const job: SubtractJob = {
    detect,
    ...(exposureId !== undefined ? { exposureId: Number(exposureId) } : {}),
    ...(zeroPoint !== undefined ? { zeroPoint: Number(zeroPoint) } : {}),
    science: str('science')!,
    template: str('template')!,
    out: str('out')!,
    preset: finalPreset,
    kernel,
    decorrelate: values['no-decorrelate'] ? false : file.decorrelate ?? true,
    configFile,
    json: values.json === true,
    quiet: values.quiet === true,
  };
  if (!tiled) return runSubtraction(job);
  return runTiledSubtraction(job, {
    ...(tileSize !== undefined ? { tileSize: Number(tileSize) } : {}),
    ...(workers !== undefined ? { workers: Math.max(1, Number(workers)) } : {}),
    ...(str('endpoint') !== undefined ? { endpoint: str('endpoint')! } : {}),
    keepWork: values['keep-work'] === true,
    progress: (progress as TiledOptions['progress']) ?? (values.quiet ? 'none' : process.stderr.isTTY ? 'bar' : 'lines'),
  });
}

function checkCli(preset: KernelPreset | undefined, kernel: Partial<KernelConfig>): void {
  try {
    resolveKernelConfig(preset ?? 'default', kernel);
  } catch (e) {
    if (e instanceof KernelError && e.code === 'BAD_CONFIG') throw new UsageError(e.message);
    throw e;
  }
}

/** The bundled real pair of the demo. */
export const DEMO_PAIR = {
  dir: fileURLToPath(new URL('../test/data/pydia-kb13475-saao1m/pairA/', import.meta.url)),
  science: 'science.fits',
  template: 'template.fits',
  /** The README's advice: the detector is non-linear above ~50000 ADU. */
  saturation: 50000,
  target: { x: 272, y: 223 },
};

/** `diffim demo [--out DIR]` */
export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    out: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(DEMO_HELP + '\n');
    return EXIT.OK;
  }
  const out = (values.out as string | undefined) ?? 'diffim-demo-output';
  if (out === '') throw new UsageError('--out must not be empty');
  const rel = (f: string) => {
    const abs = join(DEMO_PAIR.dir, f);
    const r = relative(process.cwd(), abs);
    return r.startsWith('..') ? abs : r;
  };
  const quiet = values.quiet === true;
  const log = (s: string) => { if (!quiet) process.stderr.write(s + '\n'); };
  log(`demo: pyDIA KB13475 (SAAO 1.0 m, crowded bulge field): science at a microlensing peak, template after it`);
  let zPeak = NaN;
  let top = '';
  const code = await runSubtraction({
    science: rel(DEMO_PAIR.science),
    template: rel(DEMO_PAIR.template),
    out,
    preset: 'default',
    kernel: {},
    decorrelate: true,
    detect: {},
    read: { saturation: DEMO_PAIR.saturation },
    json: values.json === true,
    quiet,
  }, (r) => {
    zPeak = peakZ(r, DEMO_PAIR.target.x, DEMO_PAIR.target.y, 3);
    const best = r.detection?.sources.filter((s) => !s.isNegative && !s.isDipole).sort((a, b) => b.significance - a.significance)[0];
    if (best) top = `the most significant positive DIA source (sources.csv id ${best.id}) is at (${best.x.toFixed(1)}, ${best.y.toFixed(1)}), ${best.significance.toFixed(1)}σ, PSF flux ${best.psfFlux.toFixed(0)} ± ${best.psfFluxErr.toFixed(0)} ADU`;
  });
  const { x, y } = DEMO_PAIR.target;
  log(`the microlensing target is near pixel (${x}, ${y}) (0-based x, y; (${x + 1}, ${y + 1}) in ds9): peak z = D/σ there ${zPeak.toFixed(1)}`);
  if (top) log(top);
  log(`look: ds9 ${join(out, 'difference.fits')}[IMAGE] -regions ${join(out, 'sources.reg')}   or   diffim inspect ${join(out, 'difference.fits')}`);
  return code;
}

/** Largest positive z = D/σ within ±r pixels of parent pixel (x, y). */
function peakZ(r: SubtractResult, x: number, y: number, rad: number): number {
  const d = r.difference;
  let best = -Infinity;
  for (let yy = y - rad; yy <= y + rad; yy++) {
    for (let xx = x - rad; xx <= x + rad; xx++) {
      const lx = xx - d.x0;
      const ly = yy - d.y0;
      if (lx < 0 || ly < 0 || lx >= d.width || ly >= d.height) continue;
      const i = ly * d.width + lx;
      if (d.variance[i]! > 0) best = Math.max(best, d.image[i]! / Math.sqrt(d.variance[i]!));
    }
  }
  return best;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Check early (before minutes of work) that DIR is, or can become, a writable directory. */
async function checkOutDir(dir: string): Promise<void> {
  let p = resolve(dir);
  for (;;) {
    try {
      const st = await stat(p);
      if (!st.isDirectory()) throw new IoError(p === resolve(dir) ? `--out ${dir}: exists and is not a directory` : `--out ${dir}: ${p} is not a directory`);
      await access(p, constants.W_OK | constants.X_OK).catch(() => { throw new IoError(`--out ${dir}: ${p} is not writable`); });
      return;
    } catch (e) {
      if (e instanceof IoError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new IoError(`--out ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      const up = dirname(p);
      if (up === p) throw new IoError(`--out ${dir}: no existing parent directory`);
      p = up;
    }
  }
}

export interface TiledOptions {
  tileSize?: number;
  workers?: number;
  endpoint?: string;
  keepWork: boolean;
  progress: 'bar' | 'lines' | 'json' | 'none';
}

/**
 * The run on the engine (core/engine): tiles, a worker-thread pool, local paths or s3:// URLs.
 * Progress: a bar per phase on a terminal, a line per phase otherwise, or JSON lines.
 */
export async function runTiledSubtraction(job: SubtractJob, o: TiledOptions): Promise<number> {
  if (!/^s3:\/\//i.test(job.out)) await checkOutDir(job.out);
  const env = { s3: { ...(o.endpoint ? { endpoint: o.endpoint } : {}) } };
  const onProgress = (e: ProgressEvent) => {
    if (o.progress === 'none') return;
    if (o.progress === 'json') { process.stderr.write(JSON.stringify(e) + '\n'); return; }
    if (o.progress === 'bar') {
      const width = 30;
      const fill = Math.round((width * e.done) / Math.max(1, e.total));
      process.stderr.write(`\r${e.phase.padEnd(9)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${e.done}/${e.total} ${secs(e.ms)}   ${e.kind === 'end' ? '\n' : ''}`);
      return;
    }
    if (e.kind === 'end') process.stderr.write(`${e.phase.padEnd(9)} ${e.total} task${e.total === 1 ? '' : 's'} (${secs(e.ms)})\n`);
  };
  const r = await runPipeline({
    science: job.science, template: job.template, out: job.out, version: VERSION,
    options: {
      preset: job.preset, kernel: job.kernel, decorrelate: job.decorrelate, detect: job.detect ?? false,
      ...(job.exposureId !== undefined ? { exposureId: job.exposureId } : {}),
      ...(job.zeroPoint !== undefined ? { zeroPoint: job.zeroPoint } : {}),
      ...(o.tileSize !== undefined ? { tileSize: o.tileSize } : {}),
    },
  }, { workers: o.workers, env, keepWork: o.keepWork, onProgress });
  if (!job.quiet) {
    process.stderr.write(`done: run ${r.plan.runId}, ${r.plan.tiles.length} tile(s) on ${r.workers} worker(s), ${r.solve.used} of ${r.solve.total} candidates, kernel sum ${r.solve.kernelSum.toFixed(4)}, ${r.stitch.sources} DIA sources\n`);
    process.stderr.write(`outputs in ${job.out}: ${Object.values(OUTPUT_NAMES).join(', ')}\n`);
  }
  if (job.json) {
    const { storage, key } = parseLocation(r.stitch.outputs.qa!, env.s3);
    process.stdout.write(new TextDecoder().decode(await storage.get(key)));
  }
  return EXIT.OK;
}

/** The whole run: read, check, subtract, write, report. Throws typed errors (see cli/errors.ts). */
export async function runSubtraction(job: SubtractJob, inspect?: (r: SubtractResult) => void): Promise<number> {
  const log = (s: string) => { if (!job.quiet) process.stderr.write(s + '\n'); };
  await checkOutDir(job.out);

  let t = performance.now();
  const [sci, tpl] = await Promise.all([readExposure(job.science, job.read), readExposure(job.template, job.read)]);
  checkGrid(job, sci, tpl);
  const varNote = (e: Exposure) => ({ file: 'from the file', 'noise-map': 'noise map', 'weight-map': 'weight map', gain: 'GAIN/RDNOISE', 'image-statistics': 'image statistics' }[e.varianceSource]);
  log(`read      ${basename(job.science)} and ${basename(job.template)}: ${sci.mi.width}×${sci.mi.height}, variance from ${varNote(sci)}${tpl.varianceSource !== sci.varianceSource ? ` / ${varNote(tpl)}` : ''} (${secs(performance.now() - t)})`);
  const inputWarnings = [...sci.warnings.map((w) => `${basename(job.science)}: ${w}`), ...tpl.warnings.map((w) => `${basename(job.template)}: ${w}`)];
  for (const w of inputWarnings) log(`warning: ${w}`);

  t = performance.now();
  const wcs = parseWcs(sci.header);
  const exposureId = job.exposureId ?? headerExposureId(sci.header) ?? 0;
  const zeroPoint = job.zeroPoint ?? headerZeroPoint(sci.header);
  const r = subtract(sci.mi, tpl.mi, {
    preset: job.preset, kernel: job.kernel, decorrelate: job.decorrelate,
    detect: job.detect ?? false, wcs: wcs.wcs, exposureId, ...(zeroPoint !== undefined ? { zeroPoint } : {}),
  });
  const q = r.qa;
  const tm = q.timingsMs;
  const phases = ['detect', 'fit', 'convolve', 'decorrelate'].filter((k) => tm[k] !== undefined).map((k) => `${k} ${secs(tm[k]!)}`).join(', ');
  const pre = r.preconvolution;
  log(`subtract  preset ${job.preset}, ${q.mode}${pre ? `, science preconvolved with its PSF (${pre.psf.method}, ${pre.psf.nStars} stars, FWHM ${pre.psf.fwhm.toFixed(2)} px): score image` : ''}, ${q.candidates.used} of ${q.candidates.total} candidates, kernel sum ${q.kernelSum.toFixed(4)}${job.decorrelate ? ', decorrelated' : ''} (${secs(performance.now() - t)}: ${phases})`);
  for (const w of q.warnings) log(`warning: ${w}`);
  const det = r.detection;
  if (det) log(`sources   ${det.sources.length} DIA sources: ${det.qa.nPositive} positive, ${det.qa.nNegative} negative, ${det.qa.nDipole} dipoles; 5σ depth ${det.qa.depth.limitingFlux.toFixed(1)} ADU${det.qa.depth.limitingMagnitude !== null ? ` (${det.qa.depth.limitingMagnitude.toFixed(2)} mag)` : ''}${wcs.wcs ? `, sky coordinates from the ${wcs.wcs.projection} WCS` : `, no sky coordinates (${wcs.reason})`}`);
  inspect?.(r);

  t = performance.now();
  const outputs: SubtractOutputs = {
    difference: join(job.out, 'difference.fits'), kernel: join(job.out, 'kernel.json'), qa: join(job.out, 'qa.json'),
    ...(det ? { sources: join(job.out, 'sources.fits'), sourcesCsv: join(job.out, 'sources.csv'), sourcesReg: join(job.out, 'sources.reg') } : {}),
  };
  const doc: QaDocument = {
    ...q,
    diffim: VERSION,
    ...(det ? { detection: { ...det.qa, nSources: det.sources.length, exposureId, zeroPoint: zeroPoint ?? null, wcs: wcs.wcs ? wcs.wcs.projection : `none (${wcs.reason})` } } : {}),
    ...(pre ? { preconvolution: preconvolutionQa(r) } : {}),
    inputs: { science: job.science, template: job.template, width: sci.mi.width, height: sci.mi.height, x0: sci.mi.x0, y0: sci.mi.y0, scienceVariance: sci.varianceSource, templateVariance: tpl.varianceSource, warnings: inputWarnings },
    config: { preset: job.preset, kernel: job.kernel, decorrelate: job.decorrelate, detect: job.detect, ...(job.configFile !== undefined ? { configFile: job.configFile } : {}) },
    outputs,
  };
  const catalog = det ? { apertureRadii: det.config.apertureRadii, fluxUnit: 'adu' } : null;
  await writeOutputs(job.out, outputs, {
    difference: (p) => writeExposure(p, r.difference, differenceHeader(sci.header, job, r), { checksum: true }),
    kernel: (p) => writeFile(p, serializeSolution(r.kernel) + '\n'),
    qa: (p) => writeFile(p, JSON.stringify(doc, null, 2) + '\n'),
    ...(det && catalog ? {
      sources: (p: string) => writeSourcesFits(p, det.sources, { ...catalog, header: sourcesHeader(job) }),
      sourcesCsv: (p: string) => writeFile(p, toCsv(det.sources, catalog)),
      sourcesReg: (p: string) => writeFile(p, toDs9Regions(det.sources)),
    } : {}),
  });
  log(`write     ${outputs.difference}, kernel.json, qa.json${det ? ', sources.fits, sources.csv, sources.reg' : ''} (${secs(performance.now() - t)})`);

  log(`done: outputs in ${job.out}${job.out.endsWith('/') ? '' : '/'}: difference.fits (${pre ? 'score image: ' : ''}IMAGE, MASK, VARIANCE), kernel.json (kernel solution), qa.json (QA)${det ? ', sources.fits/.csv/.reg (DIA sources)' : ''}`);
  log(`  kernel sum ${q.kernelSum.toFixed(4)} · robust std(z) ${q.noise.robustStdZ.toFixed(3)} (1 is ideal) · artefact rate ${(100 * q.artefactRate).toFixed(2)} % of pixels with |z| > 5`);
  if (job.json) process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  return EXIT.OK;
}

function preconvolutionQa(r: SubtractResult): PreconvolutionQa {
  const p = r.preconvolution!;
  const { method, nStars, size, fwhm, noiseL2, clippedFraction, x, y } = p.psf;
  return {
    difference: 'score',
    psf: { method, nStars, size, fwhm, noiseL2, clippedFraction, x, y },
    targetFwhm: p.targetFwhm,
    ...(r.decorrelation ? { scoreCorrection: { size: r.decorrelation.size, cropLoss: r.decorrelation.cropLoss } } : {}),
  };
}

function checkGrid(job: SubtractJob, sci: Exposure, tpl: Exposure): void {
  const a = sci.mi;
  const b = tpl.mi;
  if (a.width === b.width && a.height === b.height && a.x0 === b.x0 && a.y0 === b.y0) return;
  const at = (m: typeof a) => (m.x0 !== 0 || m.y0 !== 0 || a.x0 !== b.x0 || a.y0 !== b.y0 ? ` at (${m.x0}, ${m.y0})` : '');
  throw new KernelError('BAD_INPUT', `science ${job.science} is ${a.width}×${a.height}${at(a)} but template ${job.template} is ${b.width}×${b.height}${at(b)}: they must be on the same pixel grid (register and crop them first)`);
}

/**
 * Write each output under a temporary name in `dir`, then rename them all (difference.fits last).
 * On any failure (or SIGINT/SIGTERM while writing) the temporaries, and the finals renamed so far,
 * are removed.
 */
async function writeOutputs(dir: string, finals: SubtractOutputs, writers: Partial<Record<keyof SubtractOutputs, (path: string) => Promise<void>>>): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new IoError(`--out ${dir}: cannot create the directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const order = (['kernel', 'qa', 'sources', 'sourcesCsv', 'sourcesReg', 'difference'] as const).filter((k) => writers[k] !== undefined && finals[k] !== undefined);
  const temps = Object.fromEntries(order.map((k) => [k, join(dir, `.${basename(finals[k]!)}.tmp-${tag}`)])) as unknown as Required<SubtractOutputs>;
  const renamed: string[] = [];
  const cleanupSync = () => {
    for (const p of [...Object.values(temps), ...renamed]) {
      try { if (existsSync(p)) unlinkSync(p); } catch { /* best effort */ }
    }
  };
  const onSignal = (sig: NodeJS.Signals) => {
    cleanupSync();
    process.stderr.write(`diffim: interrupted (${sig}); partial outputs removed\n`);
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const k of order) {
      try {
        await writers[k]!(temps[k]);
      } catch (e) {
        if (e instanceof Error && 'code' in e && typeof (e as NodeJS.ErrnoException).syscall === 'string') throw new IoError(`cannot write ${temps[k]} (${(e as NodeJS.ErrnoException).code})`);
        throw e;
      }
    }
    for (const k of order) {
      try {
        await rename(temps[k], finals[k]!);
      } catch (e) {
        throw new IoError(`cannot rename ${temps[k]} to ${finals[k]} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      renamed.push(finals[k]!);
    }
  } catch (e) {
    await Promise.all([...Object.values(temps), ...renamed].map((p) => unlink(p).catch(() => undefined)));
    throw e;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

