#!/usr/bin/env bash
# Full test run (what `npm test` and .ci/run execute): dependencies, type check, all tests.
# Exits non-zero if any step fails; the type check and the tests both run even if one fails.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh || { echo "test.sh: install-deps.sh failed" >&2; exit 1; }

status=0
echo "== type check: npx tsc --noEmit"
if ! npx tsc --noEmit; then
  echo "test.sh: type check FAILED" >&2
  status=1
fi

# Node 20's --test does not expand globs ("Could not find 'test/**/*.test.ts'"), so list the files.
mapfile -t files < <(find test -name '*.test.ts' -not -path '*/node_modules/*' -type f | LC_ALL=C sort)
if ((${#files[@]} == 0)); then
  echo "test.sh: no test files found" >&2
  exit 1
fi
echo "== tests: node --import tsx --test --test-concurrency=2 (${#files[@]} files)"
if ! node --import tsx --test --test-concurrency=2 "${files[@]}"; then
  echo "test.sh: tests FAILED" >&2
  status=1
fi

if ((status == 0)); then echo "test.sh: all OK"; fi
exit "$status"
