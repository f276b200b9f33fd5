/** Typed failures of kernel fitting; `counts` carries the numbers a user needs to see why. */
export type KernelErrorCode =
  | 'BAD_CONFIG'      // a configuration value out of range (names the key)
  | 'BAD_INPUT'       // images that cannot be matched (sizes, origins, no valid pixels)
  | 'NO_STARS'        // no usable stars found at all
  | 'TOO_FEW_CANDIDATES' // stars found, but fewer than the minimum survive selection and clipping
  | 'SINGULAR'        // the normal equations carry no information (e.g. a blank template)
  | 'BAD_SOLUTION';   // a serialised solution that does not parse or is inconsistent

export class KernelError extends Error {
  override readonly name = 'KernelError';
  readonly code: KernelErrorCode;
  readonly counts: Readonly<Record<string, number>> | undefined;

  constructor(code: KernelErrorCode, message: string, counts?: Record<string, number>) {
    const tail = counts && Object.keys(counts).length > 0
      ? ` (${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')})`
      : '';
    super(`${message}${tail} [${code}]`);
    this.code = code;
    this.counts = counts ? Object.freeze({ ...counts }) : undefined;
  }
}
