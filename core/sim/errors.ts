/** Every rejected simulation argument (bad size, non-finite PSF parameter, impossible request). */
export class SimError extends Error {
  override readonly name = 'SimError';
}
