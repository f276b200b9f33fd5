/**
 * Storage: one contract suite run against MemoryStorage, LocalStorage and S3Storage (the latter
 * against a real S3-protocol server, s3rver, in a child process on 127.0.0.1), then the S3 error
 * mapping, parseLocation, and a FITS exposure written through StorageSink to S3 and read back
 * through StorageByteSource.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startS3rver, stopS3rver, type S3Server } from './helpers/s3rver.ts';
import { FitsError, FitsReader, Header } from '../core/fits/index.ts';
import { writeExposure, writeExposureToSink } from '../core/image/exposure.ts';
import { createMaskedImage } from '../core/image/masked-image.ts';
import {
  isTransientS3Error,
  LocalStorage,
  MemoryStorage,
  parseLocation,
  S3Storage,
  StorageByteSource,
  StorageError,
  StorageSink,
  type Storage,
} from '../core/storage/index.ts';
import { s3Error } from '../core/storage/s3-errors.ts';

// The SDK must never probe EC2 instance metadata for credentials or region here: every client
// below gets explicit dummy credentials and a region, and this makes any slip fail fast.
process.env.AWS_EC2_METADATA_DISABLED = 'true';
// The SDK warns once per process that its 2027 releases will need Node 22; known, and noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const BUCKET = 'diffim-test';
const MIB = 1024 * 1024;
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }; // s3rver's only account
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Deterministic bytes (xorshift), so a 20 MB stream is checkable without keeping a copy around. */
function pseudoRandom(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function* chunksOf(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, o + size);
}

async function rejectsWith(p: Promise<unknown>, code: StorageError['code'], mentions?: string): Promise<StorageError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof StorageError, `expected StorageError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (mentions !== undefined) assert.ok(caught.message.includes(mentions), `message ${JSON.stringify(caught.message)} should name ${mentions}`);
  return caught;
}

// ---- the S3 server -------------------------------------------------------------------------

let server: S3Server | undefined;
const s3Storages: S3Storage[] = [];

function s3(opts: { prefix?: string; partSize?: number; credentials?: typeof CREDENTIALS; maxAttempts?: number } = {}): S3Storage {
  const st = new S3Storage({ bucket: BUCKET, region: 'us-east-1', endpoint: server!.endpoint, credentials: CREDENTIALS, ...opts });
  s3Storages.push(st);
  return st;
}

/** Count the SDK commands a storage sends (to see multipart and paging really happen). */
function countCommands(st: S3Storage): Map<string, number> {
  const counts = new Map<string, number>();
  const send = st.client.send.bind(st.client) as (c: object) => Promise<unknown>;
  (st.client as { send: unknown }).send = (command: object, ...rest: unknown[]) => {
    const name = command.constructor.name;
    counts.set(name, (counts.get(name) ?? 0) + 1);
    return (send as (c: object, ...r: unknown[]) => Promise<unknown>)(command, ...rest);
  };
  return counts;
}

before(async () => {
  server = await startS3rver(BUCKET);
});

after(async () => {
  for (const st of s3Storages) st.destroy();
  await stopS3rver(server);
});

// ---- the contract, for every implementation ------------------------------------------------

interface Backend {
  name: string;
  make(): Storage;
  /** Files left behind in the backend's own medium (local: temporary files), if it can tell. */
  leftovers?(): string[];
}

const localRoot = mkdtempSync(join(tmpdir(), 'diffim-storage-'));
after(() => rmSync(localRoot, { recursive: true, force: true }));

function walkFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath ?? d.path, d.name));
}

const backends: Backend[] = [
  { name: 'MemoryStorage', make: () => new MemoryStorage() },
  {
    name: 'LocalStorage',
    make: () => new LocalStorage(join(localRoot, 'contract')),
    leftovers: () => walkFiles(join(localRoot, 'contract')).filter((f) => f.includes('.partial-')),
  },
  // A prefix inside the bucket, so the prefix handling is part of what is tested.
  { name: 'S3Storage (s3rver)', make: () => s3({ prefix: 'contract/run1', partSize: 5 * MIB }) },
];

for (const backend of backends) {
  describe(`Storage contract: ${backend.name}`, () => {
    let st: Storage;
    before(() => {
      st = backend.make();
    });

    it('puts and gets whole objects; put replaces', async () => {
      await st.put('a/b/hello.txt', enc('hello, world'));
      assert.equal(dec(await st.get('a/b/hello.txt')), 'hello, world');
      await st.put('a/b/hello.txt', enc('bye'));
      assert.equal(dec(await st.get('a/b/hello.txt')), 'bye');
      await st.put('empty', new Uint8Array(0));
      assert.equal((await st.get('empty')).length, 0);
      assert.equal(await st.size('empty'), 0);
    });

    it('gets byte ranges, shorter when the range runs past the end', async () => {
      const bytes = pseudoRandom(1000, 7);
      await st.put('ranged.bin', bytes);
      const cases: [number, number, number, number][] = [
        // offset, length → expected start, expected length
        [0, 1, 0, 1], // bytes=0-0: s3rver returns the whole object for it; we must trim
        [10, 20, 10, 20],
        [0, 1000, 0, 1000],
        [990, 50, 990, 10],
        [999, 1, 999, 1],
        [1000, 10, 1000, 0],
        [5000, 10, 1000, 0],
        [500, 0, 500, 0],
      ];
      for (const [offset, length, start, n] of cases) {
        const got = await st.get('ranged.bin', { offset, length });
        assert.equal(got.length, n, `range ${offset}+${length}`);
        assert.deepEqual(got, bytes.subarray(start, start + n), `range ${offset}+${length}`);
      }
      await rejectsWith(st.get('ranged.bin', { offset: -1, length: 4 }), 'BAD_RANGE');
      await rejectsWith(st.get('missing.bin', { offset: 0, length: 0 }), 'NOT_FOUND', 'missing.bin');
      await rejectsWith(st.get('missing.bin', { offset: 5, length: 10 }), 'NOT_FOUND', 'missing.bin');
    });

    it('streams a 20 MB object in uneven chunks', async () => {
      const counts = st instanceof S3Storage ? countCommands(st) : undefined;
      const bytes = pseudoRandom(20 * MIB + 12345, 11);
      await st.putStream('big/stream.bin', chunksOf(bytes, 999_983));
      assert.equal(await st.size('big/stream.bin'), bytes.length);
      assert.equal(sha(await st.get('big/stream.bin')), sha(bytes));
      const mid = await st.get('big/stream.bin', { offset: 7 * MIB - 3, length: 10 });
      assert.deepEqual(mid, bytes.subarray(7 * MIB - 3, 7 * MIB + 7));
      if (counts) {
        // 5 MiB parts: four full ones and the remainder.
        assert.equal(counts.get('CreateMultipartUploadCommand'), 1);
        assert.equal(counts.get('UploadPartCommand'), 5);
        assert.equal(counts.get('CompleteMultipartUploadCommand'), 1);
        assert.equal(counts.get('PutObjectCommand') ?? 0, 0);
      }
    });

    it('lists every key under a prefix, past 1000 (paging)', async () => {
      const counts = st instanceof S3Storage ? countCommands(st) : undefined;
      const n = 1005;
      const keys = Array.from({ length: n }, (_, i) => `many/k${String(i).padStart(4, '0')}`);
      for (let i = 0; i < keys.length; i += 8) await Promise.all(keys.slice(i, i + 8).map((k) => st.put(k, enc(k))));
      // Neighbours that share the string prefix 'many' but not 'many/'. (Not 'many-x/…': s3rver
      // walks its directories depth-first by name, which puts 'many/…' before 'many-x/…' although
      // S3's byte order is the reverse, and its paging then skips keys. '_' sorts after '/'.)
      await st.put('manyx', enc('outside'));
      await st.put('many_not/x', enc('outside'));
      const listed = await st.list('many/');
      assert.equal(listed.length, n);
      assert.deepEqual(listed, keys);
      if (counts) assert.equal(counts.get('ListObjectsV2Command'), 2, 'two pages');
      assert.deepEqual(await st.list('many/k100'), ['many/k1000', 'many/k1001', 'many/k1002', 'many/k1003', 'many/k1004']);
      assert.deepEqual(await st.list('many'), [...keys, 'many_not/x', 'manyx']);
      assert.deepEqual(await st.list('nothing/here/'), []);
      const all = await st.list('');
      assert.ok(all.includes('a/b/hello.txt') && all.includes('manyx') && all.length > n);
    });

    it('exists, size and delete', async () => {
      assert.equal(await st.exists('x/y.dat'), false);
      await st.put('x/y.dat', pseudoRandom(4321, 3));
      assert.equal(await st.exists('x/y.dat'), true);
      assert.equal(await st.size('x/y.dat'), 4321);
      assert.equal(await st.exists('x'), false, 'a prefix is not an object');
      await st.delete('x/y.dat');
      assert.equal(await st.exists('x/y.dat'), false);
      await st.delete('x/y.dat'); // deleting a missing key is fine, as on S3
      assert.deepEqual(await st.list('x/'), []);
    });

    it('says NOT_FOUND, naming the key, for a missing object', async () => {
      for (const call of [() => st.get('no/such/key.fits'), () => st.size('no/such/key.fits')]) {
        const e = await rejectsWith(call(), 'NOT_FOUND', st.url('no/such/key.fits'));
        assert.ok(!e.message.includes('\n'), 'one line');
        assert.match(e.message, /no such object/);
      }
    });

    it('rejects bad keys', async () => {
      for (const key of ['', '/abs', 'a/../b', '..', 'a//b', 'a/', './a']) {
        await rejectsWith(st.put(key, enc('x')), 'BAD_KEY');
        await rejectsWith(st.get(key), 'BAD_KEY');
        await rejectsWith(st.exists(key), 'BAD_KEY');
        await rejectsWith(st.delete(key), 'BAD_KEY');
        await rejectsWith(st.putStream(key, chunksOf(enc('x'), 1)), 'BAD_KEY');
      }
      await rejectsWith(st.list('../'), 'BAD_KEY');
      const e = await rejectsWith(st.get('a/../b'), 'BAD_KEY', 'a/../b');
      assert.match(e.message, /'\.\.' segment/);
    });

    it('an abandoned stream leaves nothing visible, and an earlier object untouched', async () => {
      // More than one part on S3, so a multipart upload was started and must be abandoned.
      const boom = new Error('producer failed');
      const failing = async function* (): AsyncGenerator<Uint8Array> {
        yield pseudoRandom(6 * MIB, 5);
        yield pseudoRandom(1 * MIB, 6);
        throw boom;
      };
      await assert.rejects(st.putStream('aborted/new.bin', failing()), (e) => e === boom);
      assert.equal(await st.exists('aborted/new.bin'), false);
      assert.deepEqual(await st.list('aborted/'), []);

      await st.put('aborted/old.bin', enc('old'));
      await assert.rejects(st.putStream('aborted/old.bin', failing()), (e) => e === boom);
      assert.equal(dec(await st.get('aborted/old.bin')), 'old');

      // The same through StorageSink.abort().
      const sink = new StorageSink(st, 'aborted/sink.bin');
      await sink.write(pseudoRandom(6 * MIB, 8));
      await sink.abort();
      assert.equal(await st.exists('aborted/sink.bin'), false);
      assert.deepEqual(await st.list('aborted/'), ['aborted/old.bin']);
      assert.deepEqual(backend.leftovers?.() ?? [], []);
    });

    it('StorageSink commits a stream; StorageByteSource reads it back by ranges', async () => {
      const bytes = pseudoRandom(3 * MIB + 17, 9);
      const sink = new StorageSink(st, 'sink/out.bin');
      for (let o = 0; o < bytes.length; o += 100_000) await sink.write(bytes.subarray(o, o + 100_000));
      assert.equal(await st.exists('sink/out.bin'), false, 'not visible before commit');
      await sink.commit();
      await assert.rejects(sink.write(enc('late')), FitsError);
      const src = await StorageByteSource.open(st, 'sink/out.bin');
      assert.equal(await src.size(), bytes.length);
      assert.deepEqual(await src.read(1000, 2880), bytes.subarray(1000, 3880));
      assert.deepEqual(await src.read(bytes.length - 5, 2880), bytes.subarray(bytes.length - 5));
      assert.equal((await src.read(bytes.length + 10, 5)).length, 0);
      await assert.rejects(StorageByteSource.open(st, 'sink/none.bin'), (e) => e instanceof FitsError && e.code === 'IO' && e.message.includes('sink/none.bin') && /no such object/.test(e.message));
    });
  });
}

// ---- S3 specifics ---------------------------------------------------------------------------

describe('S3Storage errors', () => {
  it('wrong credentials → ACCESS', async () => {
    const st = s3({ credentials: { accessKeyId: 'NOBODY', secretAccessKey: 'WRONG' } });
    const e = await rejectsWith(st.get('anything'), 'ACCESS', `s3://${BUCKET}/anything`);
    assert.equal(e.transient, false);
  });

  it('an upload that fails fails the StorageSink writes and commit, and leaves nothing', async () => {
    const bad = s3({ credentials: { accessKeyId: 'NOBODY', secretAccessKey: 'WRONG' }, partSize: 5 * MIB });
    const sink = new StorageSink(bad, 'denied/out.bin');
    let failed: unknown;
    try {
      // The first full part triggers CreateMultipartUpload, which is refused.
      for (let i = 0; i < 12; i++) await sink.write(pseudoRandom(MIB, i + 1));
      await sink.commit();
    } catch (e) {
      failed = e;
      await sink.abort();
    }
    assert.ok(failed instanceof StorageError && failed.code === 'ACCESS', String(failed));
    assert.match(failed.message, /denied\/out\.bin/);
    assert.equal(await s3().exists('denied/out.bin'), false);
  });

  it('a missing bucket → NOT_FOUND naming the bucket', async () => {
    const st = new S3Storage({ bucket: 'no-such-bucket', region: 'us-east-1', endpoint: server!.endpoint, credentials: CREDENTIALS });
    s3Storages.push(st);
    await rejectsWith(st.get('k'), 'NOT_FOUND', 's3://no-such-bucket/k');
    await rejectsWith(st.list(''), 'NOT_FOUND', 'no such bucket');
  });

  it('a server that is not there → transient IO', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const st = new S3Storage({ bucket: BUCKET, region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, credentials: CREDENTIALS, maxAttempts: 1 });
    s3Storages.push(st);
    const e = await rejectsWith(st.get('k'), 'IO', `s3://${BUCKET}/k`);
    assert.equal(e.transient, true, e.message);
  });

  it('maps service errors by name and status', () => {
    const fake = (name: string, status?: number, extra: object = {}) => Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status }, ...extra });
    const cases: [unknown, StorageError['code'], boolean][] = [
      [fake('NoSuchKey', 404), 'NOT_FOUND', false],
      [fake('NotFound', 404), 'NOT_FOUND', false],
      [fake('AccessDenied', 403), 'ACCESS', false],
      [fake('CredentialsProviderError'), 'ACCESS', false],
      [fake('SlowDown', 503), 'IO', true],
      [fake('InternalError', 500), 'IO', true],
      [fake('ThrottlingException', 400), 'IO', true],
      [fake('RequestTimeout', 400), 'IO', true],
      [fake('InvalidArgument', 400), 'IO', false],
      [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'IO', true],
      [new AggregateError([Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })]), 'IO', true],
    ];
    for (const [err, code, transient] of cases) {
      const se = s3Error(err, 's3://b/k', 'get');
      assert.equal(se.code, code, se.message);
      assert.equal(se.transient, transient, se.message);
      assert.equal(isTransientS3Error(err), transient);
      assert.ok(se.message.startsWith('s3://b/k: '), se.message);
    }
    assert.match(s3Error(fake('SlowDown', 503), 's3://b/k', 'put').message, /put failed \(transient\) \(SlowDown, HTTP 503: SlowDown message\)/);
  });
});

describe('parseLocation', () => {
  it('s3:// URLs → S3Storage for the bucket and the key', () => {
    const { storage, key } = parseLocation('s3://my-bucket/runs/42/science.fits', { endpoint: 'http://127.0.0.1:1', region: 'eu-west-1', credentials: CREDENTIALS });
    assert.ok(storage instanceof S3Storage);
    assert.equal(storage.bucket, 'my-bucket');
    assert.equal(key, 'runs/42/science.fits');
    assert.equal(storage.url(key), 's3://my-bucket/runs/42/science.fits');
    (storage as S3Storage).destroy();
    const dir = parseLocation('s3://my-bucket/runs/', { region: 'eu-west-1', credentials: CREDENTIALS });
    assert.equal(dir.key, 'runs/');
    (dir.storage as S3Storage).destroy();
  });

  it('paths and file:// URLs → LocalStorage at the root, key = absolute path', () => {
    const a = parseLocation('/data/x/science.fits');
    assert.ok(a.storage instanceof LocalStorage);
    assert.equal(a.key, 'data/x/science.fits');
    assert.equal(a.storage.url(a.key), '/data/x/science.fits');
    assert.equal(parseLocation('file:///data/x/science.fits').key, 'data/x/science.fits');
    assert.equal(parseLocation('file:///data/with%20space.fits').key, 'data/with space.fits');
    assert.equal(parseLocation('rel/../out.fits').key, join(process.cwd(), 'out.fits').slice(1));
    assert.equal(parseLocation('/data/out/').key, 'data/out/');
  });

  it('rejects what it cannot place', () => {
    for (const bad of ['s3://', 's3:///key', 's3://Bad_Bucket/key', 'gs://b/k', 'http://example.com/x.fits', '']) {
      assert.throws(() => parseLocation(bad), (e) => e instanceof StorageError && e.code === 'BAD_URL', bad);
    }
  });
});

// ---- FITS through storage -------------------------------------------------------------------

describe('FITS exposure through StorageSink / StorageByteSource on S3', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffim-storage-fits-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  // Big enough that the file (3 planes of 1100×1000 × 4 bytes ≈ 13 MB) goes up in several parts.
  const W = 1100;
  const H = 1000;
  const mi = createMaskedImage(W, H, 30, 40);
  const noise = pseudoRandom(W * H, 21);
  for (let i = 0; i < W * H; i++) {
    mi.image[i] = 100 + (noise[i]! - 128) / 8 + Math.sin(i / 997);
    mi.variance[i] = 4 + noise[(i * 7) % (W * H)]! / 64;
    mi.mask[i] = noise[i]! > 250 ? 1 : 0;
  }
  const header = new Header();
  header.set('OBJECT', 'storage round trip', '');
  header.set('CTYPE1', 'RA---TAN', '');
  header.set('CTYPE2', 'DEC--TAN', '');
  header.set('CRVAL1', 150.1, '');
  header.set('CRVAL2', 2.2, '');
  header.set('CRPIX1', 550, '');
  header.set('CRPIX2', 500, '');
  header.set('CD1_1', -7.3e-5, '');
  header.set('CD2_2', 7.3e-5, '');

  it('writes byte-identically to a local file and reads back the same pixels', async () => {
    const st = s3({ prefix: 'fits', partSize: 5 * MIB });
    const counts = countCommands(st);
    await writeExposureToSink(new StorageSink(st, 'exp/diff.fits'), mi, header);
    assert.ok((counts.get('UploadPartCommand') ?? 0) >= 3, 'multipart upload');

    const localPath = join(dir, 'diff.fits');
    await writeExposure(localPath, mi, header);
    const local = new Uint8Array(readFileSync(localPath));
    const remote = await st.get('exp/diff.fits');
    assert.equal(remote.length, local.length);
    assert.ok(Buffer.from(remote).equals(local), 'byte-identical');

    const r = await FitsReader.open(await StorageByteSource.open(st, 'exp/diff.fits'));
    try {
      assert.equal(r.name, `s3://${BUCKET}/fits/exp/diff.fits`);
      assert.deepEqual(r.hdus.map((h) => h.name), ['', 'IMAGE', 'MASK', 'VARIANCE']);
      const image = await r.readImage(r.hdu('IMAGE'));
      const mask = await r.readImage(r.hdu('MASK'));
      const variance = await r.readImage(r.hdu('VARIANCE'));
      assert.deepEqual(image.data, mi.image);
      assert.deepEqual(mask.data, mi.mask);
      assert.deepEqual(variance.data, mi.variance);
      assert.equal(r.hdus[0]!.header.string('OBJECT'), 'storage round trip');
      assert.equal(r.imageHeader(r.hdu('IMAGE')).integer('LTV1'), -30);
    } finally {
      await r.close();
    }
  });

  it('CHECKSUM through a StorageSink fails clearly and leaves nothing', async () => {
    const st = s3({ prefix: 'fits' });
    await assert.rejects(
      writeExposureToSink(new StorageSink(st, 'exp/checksummed.fits'), mi, header, { checksum: true }),
      (e) => e instanceof FitsError && e.code === 'UNSUPPORTED' && /CHECKSUM needs a sink that can patch/.test(e.message) && e.message.includes('exp/checksummed.fits'),
    );
    assert.equal(await st.exists('exp/checksummed.fits'), false);
  });
});
