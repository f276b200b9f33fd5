/**
 * stitch (one call): the reducer. Streams difference.fits row band by row band from the tiles'
 * core planes (ranged reads; memory is one band of the full width, never the image; a multipart
 * upload on S3), with CHECKSUM/DATASUM written up front from the tiles' partial sums; merges the
 * catalogues in (y, x) order of their peaks and hands out the final ids; aggregates the QA; copies
 * the solution; and writes the done-marker _DONE last. Any failure removes what it wrote.
 */
import { addOnesComplement, FitsWriter, Header } from '../fits/index.ts';
import { exposureHeaders, maskHeader } from '../image/exposure.ts';
import { parseSolution } from '../kernel/index.ts';
import { makeIdFactory, parseWcs, type DiaSource } from '../detect/index.ts';
import { toCsv, toDs9Regions, writeSourcesToSink } from '../detect/catalog.ts';
import { StorageSink } from '../storage/index.ts';
import type { SubtractQa } from '../subtract/qa.ts';
import { differenceHeader, sourcesHeader } from './provenance.ts';
import { fileName } from './plan.ts';
import type { TileDoc } from './convolve.ts';
import { getDoc, getSolutionText, locate, readPlan, under, type Plan, type StepEnv } from './run.ts';
import type { Tile } from './layout.ts';

export const OUTPUT_NAMES = {
  difference: 'difference.fits', kernel: 'kernel.json', qa: 'qa.json',
  sources: 'sources.fits', sourcesCsv: 'sources.csv', sourcesReg: 'sources.reg', done: '_DONE',
} as const;

export interface StitchResult {
  outputs: Record<string, string>;
  sources: number;
}

/** Rows per band of the streamed image (× width × 4 bytes held at once). */
const BAND_ROWS = 256;

/** Rows of the tiles' planes in file order: the tile rows top to bottom, each in bands, the tiles of a row left to right. */
async function* planeRows(plan: Plan, plane: number, env: StepEnv): AsyncGenerator<Uint8Array> {
  const W = plan.exposure.width;
  const rows = new Map<number, Tile[]>();
  for (const t of plan.tiles) {
    const list = rows.get(t.core.y0) ?? [];
    list.push(t);
    rows.set(t.core.y0, list);
  }
  for (const y0 of [...rows.keys()].sort((a, b) => a - b)) {
    const tiles = rows.get(y0)!.sort((a, b) => a.core.x0 - b.core.x0);
    const h = tiles[0]!.core.height;
    for (let r0 = 0; r0 < h; r0 += BAND_ROWS) {
      const n = Math.min(BAND_ROWS, h - r0);
      const band = new Uint8Array(n * W * 4);
      for (const t of tiles) {
        const { storage, key } = locate(under(plan.work, 'tiles', `${t.id}.planes`), env);
        const cw = t.core.width;
        const bytes = await storage.get(key, { offset: (plane * t.core.height + r0) * cw * 4, length: n * cw * 4 });
        if (bytes.length !== n * cw * 4) throw new Error(`tile ${t.id}'s planes are short (${storage.url(key)})`);
        const dx = (t.core.x0 - plan.exposure.x0) * 4;
        for (let j = 0; j < n; j++) band.set(bytes.subarray(j * cw * 4, (j + 1) * cw * 4), j * W * 4 + dx);
      }
      yield band;
    }
  }
}

/** QA of the whole exposure from the tiles' (each over its core): counts add, means weigh by their counts. */
export function mergeQa(tiles: TileDoc[]): SubtractQa {
  const first = tiles[0]!.qa;
  let n = 0;
  const acc = { robustStdZ: 0, meanZ: 0, varianceRatio: 0, neighbourCorrelation: 0, artefact: 0 };
  let fn = 0;
  let fs = 0;
  let fss = 0;
  for (const t of tiles) {
    const q = t.qa;
    const w = q.noise.n;
    if (w > 0) {
      n += w;
      acc.robustStdZ += w * q.noise.robustStdZ;
      acc.meanZ += w * q.noise.meanZ;
      acc.varianceRatio += w * q.noise.varianceRatio;
      acc.neighbourCorrelation += w * q.noise.neighbourCorrelation;
      acc.artefact += w * q.artefactRate;
    }
    const f = q.footprintResidual;
    if (f.n > 0) {
      fn += f.n;
      fs += f.n * f.mean;
      fss += (f.n > 1 ? (f.n - 1) * f.std * f.std : 0) + f.n * f.mean * f.mean;
    }
  }
  const fm = fn > 0 ? fs / fn : NaN;
  const warnings = [...new Set(tiles.flatMap((t) => t.qa.warnings))];
  return {
    ...first,
    noise: {
      n, robustStdZ: acc.robustStdZ / n, meanZ: acc.meanZ / n, meanZLimit: 5 / Math.sqrt(Math.max(1, n)),
      varianceRatio: acc.varianceRatio / n, neighbourCorrelation: acc.neighbourCorrelation / n,
    },
    artefactRate: acc.artefact / n,
    footprintResidual: { n: fn, mean: fm, std: fn > 1 ? Math.sqrt(Math.max(0, (fss - fn * fm * fm) / (fn - 1))) : NaN },
    timingsMs: {},
    warnings,
  };
}

function detectionQa(plan: Plan, tiles: TileDoc[], sources: DiaSource[]) {
  const parts = tiles.map((t) => t.detection!);
  const pixels = parts.reduce((a, p) => a + p.pixels, 0);
  const maskFractions: Record<string, number> = {};
  for (const k of Object.keys(parts[0]!.maskCounts)) maskFractions[k] = parts.reduce((a, p) => a + p.maskCounts[k]!, 0) / pixels;
  const med = (v: number[]) => { const s = [...v].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)]! : NaN; };
  const depthErr = med(parts.map((p) => p.depth.psfFluxErr));
  const thr = plan.config.detect!.thresholdValue;
  const zp = plan.config.zeroPoint;
  const wcs = parseWcs(new Header(plan.scienceHeader));
  return {
    nPositive: sources.filter((s) => !s.isNegative && !s.isDipole).length,
    nNegative: sources.filter((s) => s.isNegative && !s.isDipole).length,
    nDipole: sources.filter((s) => s.isDipole).length,
    nRejectedPeak: parts.reduce((a, p) => a + p.nRejectedPeak, 0),
    nFootprints: sources.length,
    maskFractions,
    background: { median: med(parts.map((p) => p.background.median)), min: Math.min(...parts.map((p) => p.background.min)), max: Math.max(...parts.map((p) => p.background.max)) },
    depth: { psfFluxErr: depthErr, limitingFlux: thr * depthErr, limitingMagnitude: zp !== null ? zp - 2.5 * Math.log10(thr * depthErr) : null },
    nSources: sources.length, exposureId: plan.config.exposureId, zeroPoint: zp,
    wcs: wcs.wcs ? wcs.wcs.projection : `none (${wcs.reason})`,
  };
}

export async function stitchStep(args: { work: string }, env: StepEnv = {}): Promise<StitchResult> {
  const plan = await readPlan(args.work, env);
  const tiles: TileDoc[] = [];
  for (const t of plan.tiles) tiles.push(await getDoc<TileDoc>(under(args.work, 'tiles', `${t.id}.json`), `the convolution of tile ${t.id}`, env));
  const solText = await getSolutionText(args.work, env);
  const sol = parseSolution(solText);
  const cfg = plan.config;
  const det = cfg.detect !== null;
  const names = Object.entries(OUTPUT_NAMES).filter(([k]) => det || !k.startsWith('sources'));
  const outputs = Object.fromEntries(names.map(([k, v]) => [k, under(plan.out, v)]));
  const written: string[] = [];
  const put = async (name: keyof typeof OUTPUT_NAMES, bytes: Uint8Array) => {
    const { storage, key } = locate(outputs[name]!, env);
    written.push(outputs[name]!);
    await storage.put(key, bytes);
  };
  const text = (s: string) => new TextEncoder().encode(s);
  try {
    // The difference exposure.
    const job = { science: plan.science.url, template: plan.template.url, preset: cfg.preset, decorrelate: cfg.decorrelate };
    const { primary, wcs } = exposureHeaders(differenceHeader(new Header(plan.scienceHeader), job, { kernel: sol }), plan.exposure.x0, plan.exposure.y0);
    const { storage: ds, key: dk } = locate(outputs.difference!, env);
    written.push(outputs.difference!);
    const w = new FitsWriter(new StorageSink(ds, dk), { checksum: 'given' });
    try {
      await w.writeEmptyPrimary(primary);
      const axes = [plan.exposure.width, plan.exposure.height];
      const planes = [['IMAGE', 'float32', wcs], ['MASK', 'int32', maskHeader(wcs)], ['VARIANCE', 'float32', wcs]] as const;
      for (const [p, [extname, type, header]] of planes.entries()) {
        const dataSum = tiles.reduce((a, t) => addOnesComplement(a, t.dataSums[p]), 0);
        const s = await w.beginImage({ type, axes, header, extname, dataSum });
        for await (const band of planeRows(plan, p, env)) await s.writeBytes(band);
        await s.end();
      }
      await w.close();
    } catch (e) {
      await w.abort().catch(() => undefined);
      throw e;
    }
    // Sources: one catalogue in peak order, final ids.
    const sources = tiles.flatMap((t) => t.sources).sort((a, b) => a.peakY - b.peakY || a.peakX - b.peakX);
    const nextId = makeIdFactory(cfg.exposureId);
    for (const s of sources) s.id = nextId();
    let detection;
    if (det) {
      const catalog = { apertureRadii: cfg.detect!.apertureRadii, fluxUnit: 'adu' };
      const { storage, key } = locate(outputs.sources!, env);
      written.push(outputs.sources!);
      await writeSourcesToSink(new StorageSink(storage, key), sources, { ...catalog, header: sourcesHeader(job) });
      await put('sourcesCsv', text(toCsv(sources, catalog)));
      await put('sourcesReg', text(toDs9Regions(sources)));
      detection = detectionQa(plan, tiles, sources);
    }
    await put('kernel', text(solText));
    const qa = {
      ...mergeQa(tiles),
      diffim: plan.diffim,
      ...(detection ? { detection } : {}),
      inputs: {
        science: fileName(plan.science.url), template: fileName(plan.template.url), width: plan.exposure.width, height: plan.exposure.height, x0: plan.exposure.x0, y0: plan.exposure.y0,
        scienceVariance: plan.science.layout.kind === 'lsst' ? 'file' : plan.science.layout.varianceModel!.kind === 'gain' ? 'gain' : 'image-statistics',
        templateVariance: plan.template.layout.kind === 'lsst' ? 'file' : plan.template.layout.varianceModel!.kind === 'gain' ? 'gain' : 'image-statistics',
        warnings: [...plan.science.warnings.map((x) => `science: ${x}`), ...plan.template.warnings.map((x) => `template: ${x}`)],
      },
      config: { preset: cfg.preset, kernel: cfg.kernelOverrides, decorrelate: cfg.decorrelate, detect: cfg.detectOverrides },
      tiles: { runId: plan.runId, count: plan.tiles.length, tileSize: cfg.tileSize, fitMargin: plan.fitMargin, convolveMargin: plan.convolveMargin },
      // Names only: the same run written to a disk or a bucket gives the same bytes.
      outputs: Object.fromEntries(names.filter(([k]) => k !== 'done')),
    };
    await put('qa', text(JSON.stringify(qa, null, 2) + '\n'));
    await put('done', text(JSON.stringify({ runId: plan.runId, outputs: qa.outputs }) + '\n'));
    return { outputs, sources: sources.length };
  } catch (e) {
    await Promise.all(written.map(async (u) => { const { storage, key } = locate(u, env); await storage.delete(key).catch(() => undefined); }));
    throw e;
  }
}
