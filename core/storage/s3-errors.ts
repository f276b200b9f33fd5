/**
 * SDK errors → StorageError. The SDK has already retried what it considers retryable; we still
 * mark those failures `transient` so the orchestrator can retry the whole step later, and we keep
 * the service's error name and HTTP status in the message because that is what one searches for.
 */
import { StorageError } from './errors.ts';

interface SdkErrorLike {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  errors?: unknown[]; // AggregateError from a failed connection attempt (several addresses)
}

const ACCESS_NAMES = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'AllAccessDisabled', 'CredentialsProviderError']);
const THROTTLING_NAMES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'ThrottledException', 'RequestThrottled', 'RequestThrottledException', 'TooManyRequestsException', 'RequestLimitExceeded', 'BandwidthLimitExceeded', 'ProvisionedThroughputExceededException', 'EC2ThrottledException']);
const TIMEOUT_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE']);

/** Whether `e` (an SDK or network error) may go away if the same request is made again later. */
export function isTransientS3Error(e: unknown): boolean {
  const err = (e ?? {}) as SdkErrorLike;
  const status = err.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (err.name && (THROTTLING_NAMES.has(err.name) || TIMEOUT_NAMES.has(err.name))) return true;
  if (err.$retryable) return true;
  if (err.code && NETWORK_CODES.has(err.code)) return true;
  return Array.isArray(err.errors) && err.errors.some(isTransientS3Error);
}

export function s3Error(e: unknown, url: string, op: string): StorageError {
  if (e instanceof StorageError) return e;
  const err = (e ?? {}) as SdkErrorLike;
  const status = err.$metadata?.httpStatusCode;
  const name = err.name ?? '';
  const what = [name && name !== 'Error' ? name : err.code, status !== undefined ? `HTTP ${status}` : undefined].filter(Boolean).join(', ');
  const msg = err.message && err.message !== name && err.message !== 'UnknownError' ? `: ${err.message}` : '';
  if (name === 'NoSuchBucket') return new StorageError('NOT_FOUND', url, 'no such bucket', { cause: e });
  // HEAD answers carry no body, so a missing object is a bare 404 'NotFound' there.
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return new StorageError('NOT_FOUND', url, 'no such object', { cause: e });
  if (status === 403 || ACCESS_NAMES.has(name)) return new StorageError('ACCESS', url, `access denied during ${op} (${what}${msg})`, { cause: e });
  const transient = isTransientS3Error(e);
  return new StorageError('IO', url, `${op} failed${transient ? ' (transient)' : ''} (${what || 'unknown error'}${msg})`, { transient, cause: e });
}
