// Generates the synthetic FITS fixtures (test/oracle/make_fixtures.py) into a temp dir and proves
// the oracle side works on them: fitsverify verdicts are as the manifest says, astropy reads every
// file without error, CFITSIO's funpack and astropy agree on the compressed ones where the
// manifest says so, and a few spot checks on what astropy reports.
// (Comparisons with diffim's own reader are added elsewhere, using the same helpers.)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  canonicalDigest,
  logicalColumnDigest,
  stringColumnDigest,
  varlenDigest,
  funpackToTemp,
  isImageData,
  isTableData,
  findCard,
  makeFixtures,
  runAstropyDump,
  runFitsverify,
  type DumpOk,
  type DumpResult,
  type FixtureManifestEntry,
} from "./oracle/canonical.ts";

let dir = "";
let manifest: FixtureManifestEntry[] = [];
const dumps = new Map<string, DumpResult>();
const cleanup: string[] = [];

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

function ok(file: string): DumpOk {
  const d = dumps.get(file);
  assert.ok(d, `no dump for ${file}`);
  assert.ok(!d.error, `${file}: ${d.error}`);
  return d as DumpOk;
}

/** (dtype, shape, sha256, nan_count) of every image HDU with data, in order */
function imageDigests(d: DumpOk): string[] {
  const out: string[] = [];
  for (const h of d.hdus) {
    if (isImageData(h.data)) out.push(`${h.data.dtype} ${h.data.shape.join("x")} ${h.data.sha256} nan=${h.data.nan_count}`);
  }
  return out;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "diffim-fixtures-"));
  manifest = await makeFixtures(dir);
  const res = await runAstropyDump(manifest.map((m) => join(dir, m.file)));
  manifest.forEach((m, i) => dumps.set(m.file, res[i]!));
});

after(async () => {
  for (const p of cleanup) await rm(p, { recursive: true, force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("synthetic fixtures (make_fixtures.py)", () => {
  test("manifest covers the required cases and every file exists", async () => {
    const names = manifest.map((m) => m.file);
    for (const f of [
      "bitpix8.fits", "bitpix16.fits", "bitpix32.fits", "bitpix64.fits", "bitpix-32.fits", "bitpix-64.fits",
      "scaled_int16.fits", "scaled_int32.fits", "uint16.fits", "uint32.fits", "uint64.fits", "int8.fits",
      "blank_int16.fits", "blank_scaled_int32.fits", "mef.fits", "table_types.fits", "header_astropy.fits",
      "header_raw.fits", "cube3d.fits", "naxis0.fits", "big_f32_1000x800.fits",
    ]) {
      assert.ok(names.includes(f), `manifest lacks ${f}`);
    }
    assert.ok(manifest.some((m) => m.maker === "fpack"));
    assert.ok(manifest.some((m) => m.maker === "raw"));
    let total = 0;
    for (const m of manifest) total += (await stat(join(dir, m.file))).size;
    assert.ok(total < 20e6, `fixtures too large: ${total} bytes`);
  });

  test("fitsverify: clean unless marked nonstandard", async () => {
    const results = await mapLimit(manifest, 4, async (m) => ({ m, r: await runFitsverify(join(dir, m.file)) }));
    const bad: string[] = [];
    for (const { m, r } of results) {
      if (m.nonstandard ? r.ok : !r.ok) {
        bad.push(`${m.file}: nonstandard=${m.nonstandard} but fitsverify ${r.warnings}W/${r.errors}E\n${r.output}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  test("fits_dump.py reads every fixture without error (and without warnings unless nonstandard)", () => {
    for (const m of manifest) {
      const d = ok(m.file);
      assert.ok(d.hdus.length >= 1, m.file);
      for (const h of d.hdus) {
        const data = h.data as { error?: string } | null;
        assert.ok(!(data && "error" in data && data.error), `${m.file}[${h.index}]: ${data?.error}`);
        if (isTableData(h.data)) {
          for (const c of h.data.columns) assert.ok(!c.error, `${m.file}[${h.index}] ${c.name}: ${c.error}`);
        }
      }
      if (!m.nonstandard) assert.deepEqual(d.warnings, [], `${m.file} warnings`);
    }
  });

  test("compressed fixtures: funpack + astropy agree where the manifest says so", async () => {
    const comp = manifest.filter((m) => m.compressed);
    assert.ok(comp.length >= 20);
    const unpacked = await mapLimit(comp, 4, async (m) => {
      try {
        const p = await funpackToTemp(join(dir, m.file));
        cleanup.push(dirname(p));
        return { m, p };
      } catch (e) {
        return { m, p: null as string | null, err: String(e) };
      }
    });
    const okOnes = unpacked.filter((u) => u.p !== null);
    const upDumps = await runAstropyDump(okOnes.map((u) => u.p!));
    const upByFile = new Map(okOnes.map((u, i) => [u.m.file, upDumps[i]!]));
    for (const { m, p } of unpacked) {
      assert.equal(p !== null, m.funpack_ok, `${m.file}: funpack_ok=${m.funpack_ok} but funpack ${p ? "worked" : "failed"}`);
      if (p === null) continue;
      const up = upByFile.get(m.file)!;
      assert.ok(!up.error, `${m.file} funpacked: ${up.error}`);
      const direct = imageDigests(ok(m.file));
      const viaFunpack = imageDigests(up as DumpOk);
      assert.equal(direct.length, viaFunpack.length, m.file);
      assert.ok(direct.length >= 1, m.file);
      if (m.astropy_matches_funpack) assert.deepEqual(direct, viaFunpack, m.file);
      else assert.notDeepEqual(direct, viaFunpack, `${m.file}: now matches funpack; update the manifest flag`);
      // lossless fpack copies decode to exactly the source image
      if (m.source && !m.lossy) assert.deepEqual(viaFunpack, imageDigests(ok(m.source)), `${m.file} vs ${m.source}`);
    }
  });

  test("spot checks of what astropy reports", () => {
    const img = (file: string, i = 0) => {
      const d = ok(file).hdus[i]!.data;
      assert.ok(isImageData(d), `${file}[${i}] has no image`);
      return d;
    };
    assert.equal(img("bitpix8.fits").dtype, "uint8");
    assert.equal(img("int8.fits").dtype, "int8");
    assert.equal(img("uint16.fits").dtype, "uint16");
    assert.equal(img("uint32.fits").dtype, "uint32");
    assert.equal(img("uint64.fits").dtype, "uint64");
    assert.equal(img("uint64.fits").max, "18446744073709551615");
    assert.equal(img("bitpix64.fits").dtype, "int64");
    assert.equal(img("scaled_int16.fits").dtype, "float32");
    assert.equal(img("scaled_int32.fits").dtype, "float64");
    assert.equal(img("blank_int16.fits").dtype, "float32");
    assert.equal(img("blank_int16.fits").nan_count, 6);
    assert.equal(img("blank_scaled_int32.fits").nan_count, 64);
    assert.equal(img("bitpix-32.fits").nan_count, 6);
    assert.deepEqual(img("cube3d.fits").shape, [64, 48, 3]);
    assert.equal(ok("naxis0.fits").hdus[0]!.data, null);
    const nan = ok("nan_payloads.fits");
    assert.deepEqual(nan.hdus.map((h) => (isImageData(h.data) ? h.data.nan_count : -1)), [3, 3]);

    const mef = ok("mef.fits");
    assert.deepEqual(mef.hdus.map((h) => [h.kind, h.name]), [
      ["primary", "PRIMARY"], ["image", "IMAGE"], ["image", "MASK"], ["image", "VARIANCE"], ["bintable", "SOURCES"],
    ]);

    const t = ok("table_types.fits").hdus[1]!.data;
    assert.ok(isTableData(t));
    assert.equal(t.nrows, 7);
    const col = (n: string) => t.columns.find((c) => c.name === n)!;
    assert.deepEqual(col("FLAG").values, [true, false, false, true, false]); // first 5 rows; row 2 undefined -> false
    assert.equal(col("FLAG").dtype, "bool");
    assert.equal(col("SHORT").null, -32768);
    assert.equal(col("SCALED").dtype, "float64");
    assert.deepEqual(col("SCALED").values.slice(0, 3), [10, 10.5, 0]);
    assert.equal(col("U16").dtype, "uint16");
    assert.equal(col("U32").dtype, "uint32");
    assert.equal(col("U64").dtype, "uint64");
    assert.equal(col("LONG").values[0], "9007199254740993");
    assert.deepEqual(col("VEC").shape, [3]);
    assert.equal(col("VLA").varlen, true);
    assert.deepEqual(col("VLA").lengths, [0, 1, 2, 3, 4, 5, 2]);
    assert.equal(col("NAME").values[4], "trail");
    assert.equal(col("FLT").unit, "mag");
    assert.equal(col("FLT").disp, "F8.3");

    // table digests computed on the TypeScript side from the values the generator wrote
    assert.equal(
      logicalColumnDigest([true, false, null, true, false, true, null]).sha256,
      col("FLAG").sha256,
    );
    assert.equal(
      stringColumnDigest(["", "a", "hello world", "  lead", "trail   ", "O'Hara", "exactly12chr"], { rstrip: true }).sha256,
      col("NAME").sha256,
    );
    assert.equal(
      canonicalDigest(new BigUint64Array([0n, 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 53n + 1n, 5n])).sha256,
      col("U64").sha256,
    );
    assert.equal(
      canonicalDigest(new Float64Array([10, 10.5, 0, -6373.5, 16393.5, 9.5, 11])).sha256,
      col("SCALED").sha256,
    );
    const vla = [0, 1, 2, 3, 4, 5].map((k) => Float32Array.from({ length: k }, (_, i) => i * 0.5));
    vla.push(new Float32Array([NaN, 1]));
    assert.equal(varlenDigest(vla).sha256, col("VLA").sha256);
    const extra = ok("table_extra.fits").hdus[1]!.data;
    assert.ok(isTableData(extra));
    const pstr = extra.columns.find((c) => c.name === "PSTR")!;
    assert.equal(varlenDigest(["", "short", "a longer string", "x"]).sha256, pstr.sha256);
    assert.deepEqual(pstr.lengths, [0, 5, 15, 1]);

    const raw = ok("header_raw.fits").hdus[0]!.header;
    assert.deepEqual(findCard(raw, "DEXP")?.value, { t: "float", v: 1500 });
    assert.deepEqual(findCard(raw, "CPLXFLT")?.value, { t: "complex", v: [1.5, -22.5] });
    assert.deepEqual(findCard(raw, "UINT64MX")?.value, { t: "int", v: "18446744073709551615" });
    assert.deepEqual(findCard(raw, "QUOTE")?.value, { t: "str", v: "O'Hara isn't here" });
    assert.deepEqual(findCard(raw, "ESO DET CHIP NAME")?.value, { t: "str", v: "CCD-1" });
    const longstr = findCard(raw, "LONGSTR")!;
    assert.equal(longstr.raw.length, 240);
    assert.match((longstr.value as { v: string }).v, /several cardimages using .* standard\.$/u);
    const neg0 = findCard(raw, "NEGZERO")!.value as { v: number };
    assert.ok(Object.is(neg0.v, -0), "-0.0 survives JSON");

    const und = ok("header_undefined.fits").hdus[0]!.header;
    assert.deepEqual(findCard(und, "UNDEF")?.value, { t: "none" });
  });
});
