// Proves that test/oracle/canonical.ts computes exactly the digests that test/oracle/fits_dump.py
// computes (same canonical bytes), on arrays written by numpy: NaNs with odd payloads, -0,
// denormals, int64 beyond 2^53, uint64 beyond 2^63, empty arrays, strings, logicals, varlen.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  FITS_DUMP_SCRIPT,
  PYTHON,
  canonicalDigest,
  logicalColumnDigest,
  stringColumnDigest,
  varlenDigest,
  runAstropyDump,
  runFitsverify,
  isImageData,
  type NumericTypedArray,
} from "./oracle/canonical.ts";

const run = promisify(execFile);
const DATA = fileURLToPath(new URL("./data/", import.meta.url));

interface VectorEntry {
  dtype: string;
  count: number;
  sha256: string;
  nan_count: number;
  file: string;
}

type Ctor = { new (buf: ArrayBuffer): NumericTypedArray };
const CTORS: Record<string, Ctor> = {
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  float32: Float32Array,
  float64: Float64Array,
};

function isLittleEndianHost(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

/** Raw little-endian bytes -> typed array in host order (via DataView, so it works anywhere). */
function fromLittleEndian(bytes: Uint8Array, dtype: string): NumericTypedArray {
  const Ctor = CTORS[dtype];
  assert.ok(Ctor, `no typed array for ${dtype}`);
  const buf = new ArrayBuffer(bytes.byteLength); // fresh, aligned
  new Uint8Array(buf).set(bytes);
  const arr = new Ctor(buf);
  if (!isLittleEndianHost()) {
    const size = arr.BYTES_PER_ELEMENT;
    const u8 = new Uint8Array(buf);
    for (let i = 0; i < u8.length; i += size) u8.subarray(i, i + size).reverse();
  }
  return arr;
}

test("canonical digests agree with fits_dump.py on numpy-written arrays", async () => {
  const dir = await mkdtemp(join(tmpdir(), "diffim-oracle-selftest-"));
  try {
    const { stdout } = await run(PYTHON, [FITS_DUMP_SCRIPT, "--selftest", dir], { maxBuffer: 1 << 26 });
    const vectors = JSON.parse(stdout) as Record<string, unknown>;
    const numericNames = Object.keys(vectors).filter((k) => !["strings", "logical", "varlen_float32"].includes(k));
    assert.ok(numericNames.length >= 11, "expected all numeric self-test vectors");
    for (const name of numericNames) {
      const v = vectors[name] as VectorEntry;
      const bytes = new Uint8Array(await readFile(v.file));
      const arr = fromLittleEndian(bytes, v.dtype);
      const d = canonicalDigest(arr);
      assert.deepEqual(
        { dtype: d.dtype, count: d.count, sha256: d.sha256, nanCount: d.nanCount },
        { dtype: v.dtype, count: v.count, sha256: v.sha256, nanCount: v.nan_count },
        `vector ${name}`,
      );
    }

    // the vectors really contain the tricky values
    const i64 = fromLittleEndian(new Uint8Array(await readFile((vectors.int64 as VectorEntry).file)), "int64") as BigInt64Array;
    assert.ok(i64.includes(2n ** 53n + 1n) && i64.includes(-(2n ** 63n)));
    const u64 = fromLittleEndian(new Uint8Array(await readFile((vectors.uint64 as VectorEntry).file)), "uint64") as BigUint64Array;
    assert.ok(u64.includes(2n ** 64n - 1n) && u64.includes(2n ** 63n));
    assert.equal((vectors.float32 as VectorEntry).nan_count, 3);
    assert.equal((vectors.float64 as VectorEntry).nan_count, 3);

    const s = vectors.strings as { values: string[]; sha256: string };
    // fits_dump strips trailing whitespace like astropy; the values here are raw
    assert.equal(stringColumnDigest(s.values, { rstrip: true }).sha256, s.sha256);
    assert.equal(
      stringColumnDigest(s.values.map((x) => x.replace(/\s+$/u, ""))).sha256,
      s.sha256,
    );

    const l = vectors.logical as { values: (boolean | null)[]; sha256: string };
    assert.equal(logicalColumnDigest(l.values).sha256, l.sha256);
    // raw FITS bytes 'T', 'F', 0x00 (undefined), 'T'
    assert.equal(logicalColumnDigest(new Uint8Array([0x54, 0x46, 0x00, 0x54])).sha256, l.sha256);
    assert.equal(logicalColumnDigest(new Uint8Array([1, 0, 0, 1])).sha256, l.sha256);

    const vl = vectors.varlen_float32 as { rows: (number | string)[][]; sha256: string };
    const rows = vl.rows.map((r) => Float32Array.from(r.map((x) => (x === "nan" ? NaN : Number(x)))));
    assert.equal(varlenDigest(rows).sha256, vl.sha256);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("canonicalDigest: NaN payloads and byte order do not matter, -0 does", () => {
  const a = new Float32Array([1, NaN, -0]);
  const b = new Float32Array(3);
  const bv = new DataView(b.buffer);
  bv.setFloat32(0, 1, true);
  bv.setUint32(4, 0xffffffff, true); // all-ones NaN
  bv.setFloat32(8, -0, true);
  assert.equal(canonicalDigest(a).sha256, canonicalDigest(b).sha256);
  assert.equal(canonicalDigest(a).nanCount, 1);
  assert.notEqual(canonicalDigest(new Float32Array([0])).sha256, canonicalDigest(new Float32Array([-0])).sha256);
  // a view into a larger buffer digests only its own elements
  const big = new Int16Array([9, 1, 2, 9]);
  assert.equal(canonicalDigest(big.subarray(1, 3)).sha256, canonicalDigest(new Int16Array([1, 2])).sha256);
  assert.equal(canonicalDigest(new Uint8Array(new Int8Array([-1]).buffer)).dtype, "uint8");
});

test("runAstropyDump + canonicalDigest agree on a real ZTF cut-out (float32, big-endian on disk)", async () => {
  const path = DATA + "ztf-alert-cutouts/ZTF18aagtxuc_396522680015040001_sci.fits";
  const [res] = await runAstropyDump([path]);
  assert.ok(res && !res.error, res?.error);
  const hdu = res.hdus![0]!;
  assert.equal(hdu.kind, "primary");
  const data = hdu.data;
  assert.ok(isImageData(data));
  assert.deepEqual(data.shape, [63, 41]);
  assert.equal(data.dtype, "float32");
  // decode the file's data ourselves (simple primary HDU: header blocks then big-endian floats)
  const bytes = new Uint8Array(await readFile(path));
  const text = new TextDecoder("latin1").decode(bytes);
  let end = -1;
  for (let i = 0; i < bytes.length; i += 80) {
    if (text.startsWith("END     ", i) || text.slice(i, i + 80).trimEnd() === "END") {
      end = i;
      break;
    }
  }
  assert.ok(end >= 0);
  const dataStart = Math.ceil((end + 80) / 2880) * 2880;
  const n = 63 * 41;
  const dv = new DataView(bytes.buffer, bytes.byteOffset + dataStart, n * 4);
  const arr = new Float32Array(n);
  for (let i = 0; i < n; i++) arr[i] = dv.getFloat32(i * 4, false);
  const d = canonicalDigest(arr);
  assert.equal(d.sha256, data.sha256);
  assert.equal(d.count, data.count);
  assert.equal(d.nanCount, data.nan_count);
});

test("runFitsverify parses clean and failing files", async () => {
  const ok = await runFitsverify(DATA + "ztf-alert-cutouts/ZTF18aagtxuc_396522680015040001_sci.fits");
  assert.deepEqual([ok.ok, ok.warnings, ok.errors], [true, 0, 0]);
  const decam = await runFitsverify(DATA + "sfft-decam-mini/DEC-OBS04b.mini.fits");
  assert.deepEqual([decam.ok, decam.warnings, decam.errors], [false, 2, 1]);
  assert.match(decam.output, /WCSAXES/);
  const quirky = await runFitsverify(DATA + "ztf-alert-cutouts/quirky_raw/ZTF17aaacxxf_739260766315010006_sci.raw.fits");
  assert.equal(quirky.ok, false);
  assert.ok(quirky.errors >= 1);
});
