/**
 * Builds the WASM engine (`npm run build:wasm`, also run by `npm install`/`npm ci` through the
 * `prepare` script): assembly/index.ts → build/engine.wasm, plus the sources' digest. The asc CLI
 * runs as a child process (its typings would clash with Node's in the root type check).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ascFlags, assemblyDir, digestFile, sourceDigest, wasmFile } from './source.ts';

const asc = join(dirname(createRequire(import.meta.url).resolve('assemblyscript/package.json')), 'bin', 'asc.js');
mkdirSync(dirname(wasmFile), { recursive: true });
try {
  execFileSync(process.execPath, [asc, join(assemblyDir, 'index.ts'), '--outFile', wasmFile, ...ascFlags], { stdio: 'inherit' });
} catch {
  process.stderr.write('build:wasm: asc failed\n');
  process.exit(1);
}
writeFileSync(digestFile, `${sourceDigest()}\n`);
process.stdout.write(`build:wasm: wrote ${wasmFile}\n`);
