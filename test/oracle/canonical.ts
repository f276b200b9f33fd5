/**
 * TypeScript side of diffim's FITS test oracle.
 *
 * - canonicalDigest / stringColumnDigest / logicalColumnDigest / varlenDigest compute the SAME
 *   sha256 digests as test/oracle/fits_dump.py (see the "Canonical bytes" section at the top of
 *   that script) from the typed arrays our own reader produces.
 * - runAstropyDump spawns /usr/bin/python3 test/oracle/fits_dump.py and returns its typed JSON.
 * - runFitsverify / funpackToTemp wrap the CFITSIO command-line tools (Debian packages
 *   fitsverify and libcfitsio-bin; scripts/install-deps.sh installs them).
 *
 * Canonical bytes, in short: elements in the array's own order (FITS order, NAXIS1 fastest),
 * little-endian, every NaN replaced by 0x7fc00000 (float32) / 0x7ff8000000000000 (float64);
 * logicals one byte 0/1; strings UTF-8 each followed by "\n"; varlen rows concatenated.
 */
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export type NumericTypedArray =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Float32Array
  | Float64Array;

/** numpy dtype names, as fits_dump.py reports them. */
export type NumpyDtype =
  | "uint8"
  | "int8"
  | "int16"
  | "uint16"
  | "int32"
  | "uint32"
  | "int64"
  | "uint64"
  | "float32"
  | "float64";

export interface Digest {
  dtype: string;
  count: number;
  sha256: string;
  nanCount: number;
}

const ORACLE_DIR = dirname(fileURLToPath(import.meta.url));
export const FITS_DUMP_SCRIPT = join(ORACLE_DIR, "fits_dump.py");
export const MAKE_FIXTURES_SCRIPT = join(ORACLE_DIR, "make_fixtures.py");
/** Debian's python3 (has python3-astropy/python3-numpy); the python3 on PATH may not. */
export const PYTHON = process.env.DIFFIM_ORACLE_PYTHON ?? "/usr/bin/python3";

/** numpy dtype name of a typed array. */
export function dtypeOf(data: NumericTypedArray): NumpyDtype {
  if (data instanceof Uint8Array) return "uint8";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Int16Array) return "int16";
  if (data instanceof Uint16Array) return "uint16";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Uint32Array) return "uint32";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof BigUint64Array) return "uint64";
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  throw new TypeError("canonicalDigest: unsupported array type");
}

/**
 * Canonical little-endian bytes of a numeric typed array (NaNs canonicalised). Exposed so a
 * test can concatenate several arrays; most callers want canonicalDigest.
 */
export function canonicalBytes(data: NumericTypedArray): { bytes: Uint8Array; nanCount: number } {
  const n = data.length;
  const size = data.BYTES_PER_ELEMENT;
  const out = new Uint8Array(n * size);
  const view = new DataView(out.buffer);
  let nanCount = 0;
  if (data instanceof Float32Array) {
    for (let i = 0; i < n; i++) {
      const v = data[i]!;
      if (v !== v) {
        view.setUint32(i * 4, 0x7fc00000, true);
        nanCount++;
      } else view.setFloat32(i * 4, v, true);
    }
  } else if (data instanceof Float64Array) {
    for (let i = 0; i < n; i++) {
      const v = data[i]!;
      if (v !== v) {
        view.setUint32(i * 8, 0x00000000, true);
        view.setUint32(i * 8 + 4, 0x7ff80000, true);
        nanCount++;
      } else view.setFloat64(i * 8, v, true);
    }
  } else if (data instanceof Uint8Array || data instanceof Int8Array) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, n));
  } else if (data instanceof Int16Array) {
    for (let i = 0; i < n; i++) view.setInt16(i * 2, data[i]!, true);
  } else if (data instanceof Uint16Array) {
    for (let i = 0; i < n; i++) view.setUint16(i * 2, data[i]!, true);
  } else if (data instanceof Int32Array) {
    for (let i = 0; i < n; i++) view.setInt32(i * 4, data[i]!, true);
  } else if (data instanceof Uint32Array) {
    for (let i = 0; i < n; i++) view.setUint32(i * 4, data[i]!, true);
  } else if (data instanceof BigInt64Array) {
    for (let i = 0; i < n; i++) view.setBigInt64(i * 8, data[i]!, true);
  } else if (data instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) view.setBigUint64(i * 8, data[i]!, true);
  } else {
    throw new TypeError("canonicalBytes: unsupported array type");
  }
  return { bytes: out, nanCount };
}

function sha256Hex(...chunks: Uint8Array[]): string {
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return h.digest("hex");
}

/** Digest of an image or numeric column, comparable with fits_dump.py's data.sha256. */
export function canonicalDigest(data: NumericTypedArray): Digest {
  const { bytes, nanCount } = canonicalBytes(data);
  return { dtype: dtypeOf(data), count: data.length, sha256: sha256Hex(bytes), nanCount };
}

/**
 * Digest of a character (A) column: each value UTF-8 encoded and followed by "\n".
 * fits_dump.py hashes astropy's values, which have trailing whitespace and NULs removed; pass
 * `{ rstrip: true }` to apply the same stripping here (Python str.rstrip() semantics for the
 * ASCII whitespace and NUL characters that can occur in FITS strings).
 */
export function stringColumnDigest(
  values: readonly string[],
  opts: { rstrip?: boolean } = {},
): { count: number; sha256: string } {
  const h = createHash("sha256");
  for (const v of values) {
    const s = opts.rstrip ? v.replace(/[\s\0]+$/u, "") : v;
    h.update(Buffer.from(s, "utf8"));
    h.update("\n");
  }
  return { count: values.length, sha256: h.digest("hex") };
}

/** 0/1 byte per element. Accepts booleans (null = undefined -> 0) or a Uint8Array holding either
 *  0/1 or the raw FITS bytes 'T' (0x54) / 'F' (0x46) / 0x00: 1 and 'T' are true, all else false. */
export function logicalBytes(values: readonly (boolean | null)[] | Uint8Array): Uint8Array {
  const out = new Uint8Array(values.length);
  if (values instanceof Uint8Array) {
    for (let i = 0; i < values.length; i++) out[i] = values[i] === 1 || values[i] === 0x54 ? 1 : 0;
  } else {
    for (let i = 0; i < values.length; i++) out[i] = values[i] === true ? 1 : 0;
  }
  return out;
}

/** Digest of a logical (L) or bit (X, expanded to one boolean per bit) column. */
export function logicalColumnDigest(
  values: readonly (boolean | null)[] | Uint8Array,
): { dtype: "bool"; count: number; sha256: string } {
  return { dtype: "bool", count: values.length, sha256: sha256Hex(logicalBytes(values)) };
}

/** Digest of a variable-length (P/Q) column: each row's canonical bytes, concatenated. Rows may
 *  be numeric typed arrays, logical rows (boolean arrays) or strings (PA columns). */
export function varlenDigest(
  rows: readonly (NumericTypedArray | readonly (boolean | null)[] | string)[],
  opts: { rstrip?: boolean } = {},
): { count: number; sha256: string; nanCount: number; lengths: number[] } {
  const h = createHash("sha256");
  let count = 0;
  let nanCount = 0;
  const lengths: number[] = [];
  for (const r of rows) {
    if (typeof r === "string") {
      const s = opts.rstrip ? r.replace(/[\s\0]+$/u, "") : r;
      h.update(Buffer.from(s, "utf8"));
      h.update("\n");
      count += 1;
      lengths.push(r.length);
    } else if (Array.isArray(r)) {
      h.update(logicalBytes(r as readonly (boolean | null)[]));
      count += r.length;
      lengths.push(r.length);
    } else {
      const c = canonicalBytes(r as NumericTypedArray);
      h.update(c.bytes);
      nanCount += c.nanCount;
      count += (r as NumericTypedArray).length;
      lengths.push((r as NumericTypedArray).length);
    }
  }
  return { count, sha256: h.digest("hex"), nanCount, lengths };
}

// --------------------------------------------------------------------------- fits_dump.py JSON

export type CardValue =
  | { t: "int"; v: string }
  | { t: "float"; v: number | "nan" | "inf" | "-inf" }
  | { t: "bool"; v: boolean }
  | { t: "str"; v: string }
  | { t: "complex"; v: [number | "nan" | "inf" | "-inf", number | "nan" | "inf" | "-inf"] }
  | { t: "none" }
  | { t: "commentary"; v: string }
  | { t: "unparsable"; v: string; error: string };

export interface DumpCard {
  /** astropy's card.keyword; HIERARCH cards without the "HIERARCH " prefix; "" for blank keys */
  key: string;
  value: CardValue;
  comment: string;
  /** card image(s): 80 chars, or a multiple of 80 for a long string with its CONTINUE cards */
  raw: string;
}

export interface DumpImageData {
  /** FITS order: [NAXIS1, NAXIS2, ...] */
  shape: number[];
  dtype: NumpyDtype;
  count: number;
  sha256: string;
  nan_count: number;
  /** finite values only; number for float dtypes, decimal string for integer dtypes */
  min: number | string | null;
  max: number | string | null;
}

export type ReadableValue = number | string | boolean | null | ReadableValue[];

export interface DumpColumn {
  name: string;
  /** TFORM as astropy reports it, e.g. "3E", "PE(5)" */
  format: string;
  unit: string | null;
  null: number | string | null;
  disp: string | null;
  /** numpy dtype name after scaling ("int16", "uint16", "float64", "bool", ...); "U<n>" for strings */
  dtype: string;
  /** per-row shape, absent for varlen */
  shape?: number[];
  count: number;
  sha256: string;
  nan_count?: number;
  varlen?: true;
  lengths?: number[];
  values: ReadableValue[];
  error?: string;
}

export interface DumpTableData {
  nrows: number;
  columns: DumpColumn[];
}

export type HduKind = "primary" | "image" | "bintable" | "table" | "compimage" | (string & {});

export interface DumpHdu {
  index: number;
  kind: HduKind;
  name: string;
  header: DumpCard[];
  /** compimage only: the BINTABLE header that stores the compressed image */
  table_header?: DumpCard[];
  data: DumpImageData | DumpTableData | null | { error: string };
}

export interface DumpOk {
  file: string;
  warnings: string[];
  hdus: DumpHdu[];
  error?: undefined;
}

export interface DumpError {
  file: string;
  warnings: string[];
  error: string;
  hdus?: undefined;
}

export type DumpResult = DumpOk | DumpError;

export function isImageData(d: DumpHdu["data"]): d is DumpImageData {
  return d !== null && typeof d === "object" && "shape" in d;
}

export function isTableData(d: DumpHdu["data"]): d is DumpTableData {
  return d !== null && typeof d === "object" && "columns" in d;
}

/** Look a card up by keyword (first match) in a dumped header. */
export function findCard(header: readonly DumpCard[], key: string): DumpCard | undefined {
  return header.find((c) => c.key === key);
}

interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

function run(cmd: string, args: readonly string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      cmd,
      args,
      { maxBuffer: 1 << 30, encoding: "utf8", cwd: opts.cwd },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === "string") {
          // spawn failure (ENOENT, ...), not a non-zero exit status
          reject(new Error(`${cmd}: ${err.message}`));
          return;
        }
        const code = err ? Number((err as { code?: unknown }).code ?? 1) : 0;
        resolvePromise({ stdout, stderr, code });
      },
    );
  });
}

/** Run fits_dump.py on the given files; one result per path, in order. */
export async function runAstropyDump(paths: readonly string[]): Promise<DumpResult[]> {
  if (paths.length === 0) return [];
  const r = await run(PYTHON, [FITS_DUMP_SCRIPT, ...paths.map((p) => resolve(p))]);
  if (r.code !== 0) {
    throw new Error(`fits_dump.py exited with ${r.code}: ${r.stderr.trim()}`);
  }
  const parsed = JSON.parse(r.stdout) as DumpResult[];
  if (!Array.isArray(parsed) || parsed.length !== paths.length) {
    throw new Error(`fits_dump.py returned ${String((parsed as unknown[]).length)} results for ${paths.length} files`);
  }
  return parsed;
}

export interface FitsverifyResult {
  /** `fitsverify -q` said "verification OK" (no warnings and no errors) */
  ok: boolean;
  warnings: number;
  errors: number;
  /** the full (non-quiet) fitsverify report */
  output: string;
}

/** Run CFITSIO's fitsverify on one file. */
export async function runFitsverify(path: string): Promise<FitsverifyResult> {
  const quiet = await run("fitsverify", ["-q", path]);
  const q = quiet.stdout + quiet.stderr;
  const full = await run("fitsverify", [path]);
  const output = full.stdout + full.stderr;
  const okQuiet = /verification OK/.test(q);
  let warnings = -1;
  let errors = -1;
  const mFull = /Verification found (\d+) warning\(s\) and (\d+) error\(s\)/.exec(output);
  const mQuiet = /(\d+) warnings? and (\d+) errors?/.exec(q);
  if (mFull) {
    warnings = Number(mFull[1]);
    errors = Number(mFull[2]);
  } else if (mQuiet) {
    warnings = Number(mQuiet[1]);
    errors = Number(mQuiet[2]);
  } else if (okQuiet) {
    warnings = 0;
    errors = 0;
  } else {
    // fitsverify could not even parse a summary (e.g. a fatal error): count it as one error
    errors = 1;
    warnings = 0;
  }
  return { ok: okQuiet, warnings, errors, output };
}

/** Decompress a tile-compressed FITS file with funpack into a fresh temp directory; returns the
 *  path of the uncompressed copy (the caller may delete its directory). */
export async function funpackToTemp(path: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "diffim-funpack-"));
  const out = join(dir, basename(path).replace(/\.fz$/u, ""));
  const r = await run("funpack", ["-O", out, path]);
  if (r.code !== 0) throw new Error(`funpack failed (${r.code}): ${(r.stdout + r.stderr).trim()}`);
  return out;
}

/** Run make_fixtures.py into `outdir` and return its manifest. */
export async function makeFixtures(outdir: string): Promise<FixtureManifestEntry[]> {
  const r = await run(PYTHON, [MAKE_FIXTURES_SCRIPT, outdir]);
  if (r.code !== 0) throw new Error(`make_fixtures.py exited with ${r.code}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as FixtureManifestEntry[];
}

export interface FixtureManifestEntry {
  /** file name relative to the output directory */
  file: string;
  /** what the fixture exercises */
  exercises: string;
  /** "astropy" | "raw" (bytes written by hand) | "patched" (astropy, then bytes patched) | "fpack" */
  maker: "astropy" | "raw" | "patched" | "fpack";
  /** fitsverify is EXPECTED to report warnings or errors (deliberately non-standard input) */
  nonstandard: boolean;
  /** lossy (quantized) compression: compare with the decoded values, not the source image */
  lossy: boolean;
  /** optional feature a reader may legitimately reject (HCOMPRESS, PLIO, ASCII tables, ...) */
  optional: boolean;
  /** tile-compressed image(s) */
  compressed: boolean;
  /** for fpack copies: the uncompressed fixture they were made from */
  source?: string;
  /** compressed only: CFITSIO's funpack can decompress the file */
  funpack_ok?: boolean;
  /** compressed only: astropy's direct decompression equals astropy's reading of the funpack'ed
   *  file (digest and dtype). When false, the funpack'ed file is the reference. */
  astropy_matches_funpack?: boolean;
}
