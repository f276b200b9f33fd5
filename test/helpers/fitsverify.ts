/** fitsverify (Debian package, the FITS standard's validator) on one file: its warning and error counts. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

export function fitsverify(path: string): { warnings: number; errors: number; output: string } {
  const r = spawnSync('fitsverify', [path], { encoding: 'utf8' });
  if (r.error) throw new Error(`fitsverify is missing (scripts/install-deps.sh installs it): ${r.error.message}`);
  const output = r.stdout + r.stderr;
  const m = /Verification found (\d+) warning\(s\) and (\d+) error\(s\)/.exec(output);
  assert.ok(m, `no fitsverify summary line:\n${output}`);
  return { warnings: Number(m[1]), errors: Number(m[2]), output };
}
