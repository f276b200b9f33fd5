// An S3-protocol server for test/storage.test.ts, in its own process so a hang or crash in it
// cannot take the test runner down. Usage: node --openssl-legacy-provider s3rver-process.mjs BUCKET
// (s3rver encrypts list continuation tokens with DES, which OpenSSL 3 only has in its legacy
// provider: without the flag every list past the first page fails.)
// Prints one JSON line {"port": N} once listening on 127.0.0.1 (a free port), then serves until
// SIGTERM, SIGINT or its stdin closes (the parent died); its data directory is removed on exit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

const bucket = process.argv[2] ?? 'test-bucket';
const directory = mkdtempSync(join(tmpdir(), 'diffim-s3rver-'));
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: [{ name: bucket, configs: [] }],
});

function stop() {
  rmSync(directory, { recursive: true, force: true });
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();

const address = await server.run();
process.stdout.write(JSON.stringify({ port: address.port }) + '\n');
