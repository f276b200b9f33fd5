/** s3rver (a real S3-protocol server) in a child process on 127.0.0.1, for the tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface S3Server {
  child: ChildProcess;
  endpoint: string;
}

export async function startS3rver(bucket: string): Promise<S3Server> {
  // --openssl-legacy-provider: s3rver's list continuation tokens use DES (see the helper).
  const child = spawn(process.execPath, ['--openssl-legacy-provider', join(import.meta.dirname, 's3rver-process.mjs'), bucket], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('s3rver did not start within 20 s')), 20_000);
    createInterface({ input: child.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code} before listening`)));
  });
  const { port } = JSON.parse(line) as { port: number };
  return { child, endpoint: `http://127.0.0.1:${port}` };
}

export async function stopS3rver(s: S3Server | undefined): Promise<void> {
  if (!s || s.child.exitCode !== null) return;
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill('SIGTERM');
  await exited;
}

