/**
 * Benchmark runner: `npm run bench` runs every benchmark; `node --import tsx bench/run.ts fits`
 * runs the named ones. Each benchmark returns a JSON-able record, printed as a table and written
 * to bench/results/<name>.json. To add one, add an entry to BENCHMARKS.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Figure } from './fits.ts';

type Benchmark = () => Promise<Record<string, unknown>>;

// Loaded only when asked for, so one benchmark's modules (fft.js, …) do not weigh on another's timings.
const BENCHMARKS: Record<string, Benchmark> = {
  fits: async () => (await import('./fits.ts')).benchFits(),
  kernel: async () => (await import('./kernel.ts')).benchKernel(),
  'real-pairs': async () => (await import('./real-pairs.ts')).benchRealPairs(),
  subtract: async () => (await import('./subtract.ts')).benchSubtract(),
  pipeline: async () => (await import('./pipeline.ts')).benchPipeline(),
};

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

function printFigures(figures: Figure[]): void {
  const rows = figures.map((f) => [
    f.name,
    f.ms.toFixed(1),
    f.target_ms === undefined ? '—' : `≤ ${f.target_ms}`,
    f.pass === undefined ? '' : f.pass ? 'PASS' : `FAIL (+${(f.ms - f.target_ms!).toFixed(1)} ms, ${(f.ms / f.target_ms!).toFixed(2)}×)`,
    `${f.runs}`,
    f.note ?? '',
  ]);
  const head = ['measure', 'median ms', 'target', 'result', 'runs', 'note'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => pad(c, w[i]!, i === 1 || i === 4)).join('  ').trimEnd();
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(line(r));
}

function printRecord(rec: Record<string, unknown>, indent = ''): void {
  for (const [k, v] of Object.entries(rec)) {
    if (k === 'figures') continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      console.log(`${indent}${k}:`);
      printRecord(v as Record<string, unknown>, indent + '  ');
    } else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) {
      console.log(`${indent}${k}:`);
      for (const x of v) console.log(`${indent}  - ${x}`);
    } else {
      console.log(`${indent}${k}: ${Array.isArray(v) ? JSON.stringify(v) : String(v)}`);
    }
  }
}

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  const names = asked.length ? asked : Object.keys(BENCHMARKS);
  const unknown = names.filter((n) => !(n in BENCHMARKS));
  if (unknown.length) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${Object.keys(BENCHMARKS).join(', ')}`);
    process.exit(2);
  }
  mkdirSync(RESULTS, { recursive: true });
  let failed = 0;
  for (const name of names) {
    console.log(`\n== ${name} ==`);
    const rec = await BENCHMARKS[name]!();
    const figures = Array.isArray(rec.figures) ? (rec.figures as Figure[]) : [];
    if (figures.length) printFigures(figures);
    console.log('');
    printRecord(rec);
    failed += figures.filter((f) => f.pass === false).length;
    const out = join(RESULTS, `${name}.json`);
    writeFileSync(out, JSON.stringify(rec, null, 2) + '\n');
    console.log(`\nwrote ${out}`);
  }
  if (failed) console.log(`\n${failed} figure(s) missed their target.`);
}

await main();
