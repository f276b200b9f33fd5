/**
 * Errors of the pipeline itself (the algorithms' own typed errors — FitsError, KernelError,
 * StorageError, DetectError — pass through unchanged).
 *   BAD_INPUT    the pair cannot be processed as given (sizes differ, unsupported layout, bad config)
 *   BAD_STATE    a step's input from an earlier step is missing or unreadable (a step run out of order)
 */
export type PipelineErrorCode = 'BAD_INPUT' | 'BAD_STATE';

export class PipelineError extends Error {
  override readonly name = 'PipelineError';
  constructor(readonly code: PipelineErrorCode, readonly detail: string) {
    super(`${code}: ${detail}`);
  }
}
