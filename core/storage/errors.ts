/**
 * Every storage failure surfaces as one StorageError that names the location (a path or an
 * s3:// URL) and the problem, so the CLI can print one line and the workflow can decide from
 * `code` and `transient` whether retrying the step makes sense.
 */
export type StorageErrorCode =
  | 'NOT_FOUND'   // no object (or no bucket) at that key
  | 'ACCESS'      // permission denied / bad credentials
  | 'IO'          // anything else that went wrong reading or writing; see `transient`
  | 'BAD_KEY'     // a key we refuse (empty, '..' or '.' segments, leading '/', …)
  | 'BAD_URL'     // a location string that is not a path or an s3:// URL we understand
  | 'BAD_RANGE'   // a negative or non-integer offset/length
  | 'ABORTED';    // a streamed write was abandoned by its producer

export class StorageError extends Error {
  override readonly name = 'StorageError';
  readonly code: StorageErrorCode;
  /** The location the error is about (path, s3://bucket/key, memory://key), '' if none. */
  readonly url: string;
  readonly detail: string;
  /**
   * True when the same call may succeed later (throttling, 5xx, dropped connections). The S3
   * client has already retried by then; this is for the orchestrator's retry policy.
   */
  readonly transient: boolean;

  constructor(code: StorageErrorCode, url: string, detail: string, opts: { transient?: boolean; cause?: unknown } = {}) {
    super(`${url ? url + ': ' : ''}${detail} [${code}]`, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.code = code;
    this.url = url;
    this.detail = detail;
    this.transient = opts.transient ?? false;
  }
}

export function isStorageError(e: unknown, code?: StorageErrorCode): e is StorageError {
  return e instanceof StorageError && (code === undefined || e.code === code);
}
