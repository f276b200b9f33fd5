#!/usr/bin/env bash
# Idempotent dependency installer for diffim's tests (Debian bookworm, run as root in CI).
#  * apt: python3-astropy python3-numpy (the FITS oracle, run with /usr/bin/python3),
#         python3-regions (astropy-regions: the DS9 region-file oracle),
#         fitsverify, libcfitsio-bin (fpack/funpack) -- installed only when missing;
#         `apt-get update` runs only if something has to be installed.
#  * npm: `npm ci --no-audit --no-fund` when node_modules is missing or package-lock.json is newer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

APT_PKGS=(python3-astropy python3-numpy python3-regions fitsverify libcfitsio-bin)

pkg_present() {
  local p=$1
  if command -v dpkg-query >/dev/null 2>&1; then
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'
    return
  fi
  # not a dpkg system: fall back to what the package provides
  case "$p" in
    python3-astropy) /usr/bin/python3 -c 'import astropy' >/dev/null 2>&1 ;;
    python3-numpy) /usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 ;;
    python3-regions) /usr/bin/python3 -c 'import regions' >/dev/null 2>&1 ;;
    fitsverify) command -v fitsverify >/dev/null 2>&1 ;;
    libcfitsio-bin) command -v fpack >/dev/null 2>&1 && command -v funpack >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

missing=()
for p in "${APT_PKGS[@]}"; do
  pkg_present "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: apt packages already present: ${APT_PKGS[*]}"
else
  echo "install-deps: installing missing apt packages: ${missing[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: apt-get not available; install ${missing[*]} by hand" >&2
    exit 1
  fi
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      SUDO=(sudo -n env DEBIAN_FRONTEND=noninteractive)
    else
      echo "install-deps: not root and no passwordless sudo; install ${missing[*]} by hand" >&2
      exit 1
    fi
  fi
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  echo "install-deps: installed ${missing[*]}"
fi

# the oracles need astropy/numpy/regions importable by Debian's python, whatever python3 is on PATH
if ! /usr/bin/python3 -c 'import astropy, numpy, regions' >/dev/null 2>&1; then
  echo "install-deps: /usr/bin/python3 cannot import astropy, numpy and regions" >&2
  exit 1
fi
for c in fitsverify fpack funpack; do
  command -v "$c" >/dev/null 2>&1 || { echo "install-deps: $c not found on PATH" >&2; exit 1; }
done

marker=node_modules/.package-lock.json
if [[ ! -d node_modules ]]; then
  echo "install-deps: node_modules missing -> npm ci"
  npm ci --no-audit --no-fund
elif [[ -f $marker && package-lock.json -nt $marker ]] || [[ ! -f $marker && package-lock.json -nt node_modules ]]; then
  echo "install-deps: package-lock.json is newer than node_modules -> npm ci"
  npm ci --no-audit --no-fund
else
  echo "install-deps: node_modules up to date"
fi

# The WASM convolution engine is built by `npm ci` (prepare); rebuild it when its sources changed
# since (a pull without a lock-file change), which the loader would otherwise refuse.
if ! node --import tsx -e "import('./core/convolve/wasm/source.ts').then(async (s) => { const fs = await import('node:fs'); const ok = fs.existsSync(s.wasmFile) && fs.existsSync(s.digestFile) && fs.readFileSync(s.digestFile, 'utf8').trim() === s.sourceDigest(); process.exit(ok ? 0 : 1); })" 2>/dev/null; then
  echo "install-deps: WASM engine missing or older than its sources -> npm run build:wasm"
  npm run -s build:wasm
else
  echo "install-deps: WASM engine up to date"
fi
