/**
 * Where the WASM engine's sources and build live, and a digest of the sources: the build records
 * it beside the .wasm so that the loader can refuse a build older than the sources.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const assemblyDir = join(here, 'assembly');
export const wasmFile = join(here, 'build', 'engine.wasm');
export const digestFile = join(here, 'build', 'engine.sha256');
export const buildCommand = 'npm run build:wasm';

/** asc options: f64x2 SIMD, speed, no GC runtime (the engine never allocates), no assertion traps. */
export const ascFlags = ['-O3', '--enable', 'simd', '--runtime', 'stub', '--noAssert'];

/** Digest of the flags and the assembly/*.ts sources, or null if the sources are not shipped. */
export function sourceDigest(): string | null {
  if (!existsSync(assemblyDir)) return null;
  const h = createHash('sha256');
  h.update(ascFlags.join(' '));
  for (const f of readdirSync(assemblyDir).filter((f) => f.endsWith('.ts')).sort()) {
    h.update(`\0${f}\0`);
    h.update(readFileSync(join(assemblyDir, f)));
  }
  return h.digest('hex');
}
