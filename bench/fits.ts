/**
 * FITS I/O benchmark: write/read a 4096² float32 image (whole and as a 1088-row band), the same
 * for a uint16 (BZERO = 32768) image, a RICE-compressed int16 image made by fpack, and astropy
 * as a peer figure. Figures are medians of repeated runs after one warm-up.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FitsReader, FitsWriter } from '../core/fits/index.ts';

const W = 4096;
const H = 4096;
const BAND_Y0 = 1500;
const BAND_ROWS = 1088;
const STREAM_ROWS = 256;

/** Issue targets (ms) on the 2-core reference machine. */
const TARGET = { readWhole: 100, readBand: 25, write: 300 } as const;

export interface Figure {
  name: string;
  /** Median wall time, ms. */
  ms: number;
  runs: number;
  /** Every timed run, ms (to show the spread: GC from external-memory pressure makes it wide). */
  all_ms: number[];
  target_ms?: number;
  pass?: boolean;
  note?: string;
}

/** Deterministic noise (mulberry32 + Box–Muller). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(n: number, seed: number, mean: number, sigma: number): Float64Array {
  const u = rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const th = 2 * Math.PI * u();
    out[i] = mean + sigma * r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = mean + sigma * r * Math.sin(th);
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function time(runs: number, fn: () => Promise<unknown>, warmup = 1): Promise<{ ms: number; all: number[] }> {
  for (let i = 0; i < warmup; i++) await fn();
  const all: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    all.push(performance.now() - t0);
  }
  return { ms: median(all), all };
}

function round(x: number, d = 1): number {
  const k = 10 ** d;
  return Math.round(x * k) / k;
}

function maxRssMB(): number {
  return round(process.resourceUsage().maxRSS / 1024, 0); // maxRSS is in KiB
}

function fig(name: string, t: { ms: number; all: number[] }, target?: number, note?: string): Figure {
  const f: Figure = { name, ms: round(t.ms), runs: t.all.length, all_ms: t.all.map((x) => round(x)) };
  if (target !== undefined) {
    f.target_ms = target;
    f.pass = t.ms <= target;
  }
  if (note) f.note = note;
  return f;
}

async function readWhole(path: string): Promise<number> {
  const r = await FitsReader.open(path);
  try {
    const { data } = await r.readImage(r.hdus[0]!);
    return data.length;
  } finally {
    await r.close();
  }
}

async function readBand(path: string): Promise<number> {
  const r = await FitsReader.open(path);
  try {
    const { data } = await r.readRows(r.hdus[0]!, BAND_Y0, BAND_Y0 + BAND_ROWS);
    return data.length;
  } finally {
    await r.close();
  }
}

/** Same file, same bytes, split into: allocate, fs read, byteswap — where the whole-read time goes. */
async function breakdownFloatRead(path: string): Promise<Record<string, number>> {
  const r = await FitsReader.open(path);
  const h = r.hdus[0]!;
  const { dataOffset, dataBytes } = h;
  await r.close();
  const alloc = await time(5, async () => {
    const b = new Uint8Array(dataBytes);
    b[b.length - 1] = 1;
  });
  const fh = await open(path, 'r');
  const buf = new Uint8Array(dataBytes);
  const fsRead = await time(5, async () => {
    let got = 0;
    while (got < dataBytes) {
      const { bytesRead } = await fh.read(buf, got, dataBytes - got, dataOffset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
  });
  const fsReadFresh = await time(5, async () => {
    const b = new Uint8Array(dataBytes); // fresh pages: the kernel copy takes the page faults
    let got = 0;
    while (got < dataBytes) {
      const { bytesRead } = await fh.read(b, got, dataBytes - got, dataOffset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
  });
  await fh.close();
  const swap = await time(5, async () => {
    Buffer.from(buf.buffer, buf.byteOffset, buf.length).swap32();
  });
  const openOnly = await time(5, async () => {
    const rr = await FitsReader.open(path);
    await rr.close();
  });
  return {
    open_header_ms: round(openOnly.ms, 2),
    alloc_64MiB_ms: round(alloc.ms, 2),
    fs_read_into_existing_buffer_ms: round(fsRead.ms, 2),
    alloc_plus_fs_read_into_fresh_buffer_ms: round(fsReadFresh.ms, 2),
    swap32_ms: round(swap.ms, 2),
  };
}

/** Where the write time goes: encode (copy + swap), fs write, fsync in commit. */
async function breakdownFloatWrite(dir: string, img: Float32Array): Promise<Record<string, number>> {
  const bytes = new Uint8Array(img.byteLength);
  const encode = await time(5, async () => {
    bytes.set(new Uint8Array(img.buffer, img.byteOffset, img.byteLength));
    Buffer.from(bytes.buffer).swap32();
  });
  const p = join(dir, 'raw-write.bin');
  const writeNoSync = await time(5, async () => {
    const fh = await open(p, 'w');
    let done = 0;
    while (done < bytes.length) done += (await fh.write(bytes, done, bytes.length - done, done)).bytesWritten;
    await fh.close();
  });
  const writeSync = await time(5, async () => {
    const fh = await open(p, 'w');
    let done = 0;
    while (done < bytes.length) done += (await fh.write(bytes, done, bytes.length - done, done)).bytesWritten;
    await fh.sync();
    await fh.close();
  });
  rmSync(p, { force: true });
  return {
    encode_copy_swap_ms: round(encode.ms, 2),
    fs_write_no_fsync_ms: round(writeNoSync.ms, 2),
    fs_write_with_fsync_ms: round(writeSync.ms, 2),
  };
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function astropyPeer(path: string, y0: number, rows: number): Record<string, unknown> {
  const py = `
import time, statistics, numpy as np, astropy
from astropy.io import fits
p = ${JSON.stringify(path)}
def whole():
    with fits.open(p, memmap=False) as h:
        d = h[0].data
        return d
def whole_native():
    with fits.open(p, memmap=False) as h:
        d = h[0].data
        return d.astype(d.dtype.newbyteorder('='), copy=False)
def band():
    with fits.open(p, memmap=True) as h:
        d = np.array(h[0].section[${y0}:${y0 + rows}, :])
        return d
out = {'astropy': astropy.__version__, 'numpy': np.__version__}
for name, fn in (('whole_big_endian_ms', whole), ('whole_native_order_ms', whole_native), ('band_ms', band)):
    fn()
    ts = []
    for _ in range(3):
        t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1000)
    out[name] = statistics.median(ts)
import json; print(json.dumps(out))
`;
  const t = execFileSync('/usr/bin/python3', ['-c', py], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(t.trim().split('\n').pop()!) as Record<string, unknown>;
}

export async function benchFits(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(os.tmpdir(), 'diffim-bench-fits-'));
  const figures: Figure[] = [];
  const rss: Record<string, number> = { start_MB: maxRssMB() };
  const notes: string[] = [
    'page cache: every read is of a file this process has just written, so it is served from the page cache (warm); cold-cache figures are not measured.',
    'write figures are end to end: FitsWriter.toFile → writeImage/writeRows → close(), and close() fsyncs and renames the file.',
    'read figures are end to end: FitsReader.open → readImage/readRows → close().',
    `band = rows [${BAND_Y0}, ${BAND_Y0 + BAND_ROWS}) of ${H}.`,
  ];
  try {
    // ---- float32 ----
    const noise = gaussian(W * H, 12345, 1000, 30);
    const f32 = Float32Array.from(noise);
    rss.after_make_images_MB = maxRssMB();
    const fpath = join(dir, 'f32.fits');

    const writeWhole = await time(5, async () => {
      const w = await FitsWriter.toFile(fpath);
      await w.writeImage(f32, [W, H]);
      await w.close();
    });
    figures.push(fig('float32 write whole (writeImage)', writeWhole, TARGET.write));

    const writeStream = await time(5, async () => {
      const w = await FitsWriter.toFile(fpath);
      const s = await w.beginImage({ type: 'float32', axes: [W, H] });
      for (let y = 0; y < H; y += STREAM_ROWS) await s.writeRows(f32.subarray(y * W, Math.min(H, y + STREAM_ROWS) * W));
      await s.end();
      await w.close();
    });
    figures.push(fig(`float32 write streaming (${STREAM_ROWS}-row bands)`, writeStream, TARGET.write));

    const writeCk = await time(5, async () => {
      const w = await FitsWriter.toFile(fpath, { checksum: true });
      await w.writeImage(f32, [W, H]);
      await w.close();
    });
    figures.push(fig('float32 write whole, checksum: true', writeCk, TARGET.write, 'CHECKSUM/DATASUM computed'));
    rss.after_float_writes_MB = maxRssMB();

    // The last write carried CHECKSUM; rewrite a plain file so the reads are of the plain layout.
    {
      const w = await FitsWriter.toFile(fpath);
      await w.writeImage(f32, [W, H]);
      await w.close();
    }
    // Sanity: round trip is exact.
    {
      const r = await FitsReader.open(fpath);
      const { data } = await r.readImage(r.hdus[0]!);
      await r.close();
      const d = data as Float32Array;
      for (let i = 0; i < d.length; i += 9973) if (d[i] !== f32[i]) throw new Error(`float32 round trip differs at ${i}`);
    }

    figures.push(fig('float32 read whole', await time(5, () => readWhole(fpath)), TARGET.readWhole));
    rss.after_float_read_whole_MB = maxRssMB();
    figures.push(fig(`float32 read ${BAND_ROWS}-row band`, await time(9, () => readBand(fpath)), TARGET.readBand));

    const breakdown = {
      read: await breakdownFloatRead(fpath),
      write: await breakdownFloatWrite(dir, f32),
    };

    // ---- uint16 (BITPIX 16, BZERO 32768) ----
    const u16 = new Uint16Array(W * H);
    for (let i = 0; i < u16.length; i++) u16[i] = Math.max(0, Math.min(65535, Math.round(noise[i]! * 20)));
    const upath = join(dir, 'u16.fits');
    figures.push(
      fig('uint16 (BZERO) write whole', await time(5, async () => {
        const w = await FitsWriter.toFile(upath);
        await w.writeImage(u16, [W, H]);
        await w.close();
      }), TARGET.write, 'float32 target applied'),
    );
    {
      const r = await FitsReader.open(upath);
      const { data } = await r.readImage(r.hdus[0]!);
      await r.close();
      if (!(data instanceof Uint16Array)) throw new Error('uint16 image did not read back as Uint16Array');
      for (let i = 0; i < data.length; i += 9973) if (data[i] !== u16[i]) throw new Error(`uint16 round trip differs at ${i}`);
    }
    figures.push(fig('uint16 (BZERO) read whole', await time(5, () => readWhole(upath)), TARGET.readWhole, 'float32 target applied'));
    figures.push(fig(`uint16 (BZERO) read ${BAND_ROWS}-row band`, await time(9, () => readBand(upath)), TARGET.readBand, 'float32 target applied'));
    rss.after_uint16_MB = maxRssMB();

    // ---- RICE_1 int16 via fpack ----
    let rice: Record<string, unknown> = { skipped: 'fpack not found' };
    if (hasCommand('fpack')) {
      const i16 = new Int16Array(W * H);
      for (let i = 0; i < i16.length; i++) i16[i] = Math.round(noise[i]!);
      const ipath = join(dir, 'i16.fits');
      const zpath = join(dir, 'i16.fits.fz');
      {
        const w = await FitsWriter.toFile(ipath);
        await w.writeImage(i16, [W, H]);
        await w.close();
      }
      execFileSync('fpack', ['-r', '-O', zpath, ipath], { stdio: 'ignore' });
      const r = await FitsReader.open(zpath);
      const h = r.hdus.find((x) => x.kind === 'compressed-image');
      if (!h) throw new Error('fpack output has no compressed image HDU');
      const L = r.compressed(h);
      const { data } = await r.readImage(h);
      await r.close();
      for (let i = 0; i < data.length; i += 9973) if (data[i] !== i16[i]) throw new Error(`RICE round trip differs at ${i}`);
      const readZ = async (band: boolean) => {
        const rr = await FitsReader.open(zpath);
        try {
          const hh = rr.hdus[h.index]!;
          return band ? (await rr.readRows(hh, BAND_Y0, BAND_Y0 + BAND_ROWS)).data.length : (await rr.readImage(hh)).data.length;
        } finally {
          await rr.close();
        }
      };
      figures.push(fig('RICE_1 int16 (fpack) read whole', await time(5, () => readZ(false)), undefined, 'no target'));
      figures.push(fig(`RICE_1 int16 (fpack) read ${BAND_ROWS}-row band`, await time(9, () => readZ(true)), undefined, 'no target'));
      rice = {
        fpack_args: '-r -O x.fz x.fits',
        source: 'int16 4096², N(1000, 30) noise',
        file_bytes: statSync(zpath).size,
        uncompressed_bytes: statSync(ipath).size,
        tile: L.tile,
        cmptype: L.cmptype,
      };
      rss.after_rice_MB = maxRssMB();
    }

    // ---- astropy peer ----
    let peer: Record<string, unknown>;
    try {
      const a = astropyPeer(fpath, BAND_Y0, BAND_ROWS);
      peer = {
        label: 'PEER FIGURE (astropy, same float32 file, warm cache, median of 3 after 1 warm-up; not a target)',
        ...Object.fromEntries(Object.entries(a).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v])),
        note: 'whole_big_endian: fits.open(memmap=False)[0].data, left big-endian as astropy returns it (no byteswap); whole_native_order adds the byteswap to native order (comparable to ours); band: section[y0:y1] via memmap.',
      };
    } catch (e) {
      peer = { skipped: `astropy not available: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
    }

    rss.peak_MB = maxRssMB();
    return {
      benchmark: 'fits',
      date: new Date().toISOString(),
      node: process.version,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cpus: os.cpus().length,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      image: `${W}×${H}`,
      targets_ms: TARGET,
      figures,
      peak_rss: { ...rss, note: 'process.resourceUsage().maxRSS (high-water mark, so monotonic); includes the 16M-element float64 noise buffer (128 MiB) and the source images held for the run.' },
      breakdown_float32: breakdown,
      rice,
      astropy_peer: peer,
      notes,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
