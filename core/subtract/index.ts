export { subtract, applyDecorrelation, backgroundImage, prepareForConvolution, type SubtractOptions, type SubtractResult } from './subtract.ts';
export { decorrelationKernel, neighbourCorrelation, type DecorrelationKernel } from './decorrelate.ts';
export { computeQa, type SubtractQa } from './qa.ts';
export { exclusionMask, noiseFidelity, sourceFreeFidelity, INVALID_DIFF_BITS, type NoiseFidelity } from './metrics.ts';
