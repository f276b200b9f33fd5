export { subtract, applyDecorrelation, backgroundImage, prepareForConvolution, type SubtractOptions, type SubtractResult, type PreconvolutionInfo } from './subtract.ts';
export { preconvolutionKernel, scoreCorrection, convolveKernels, constantKernel, convolveTerms } from './preconvolve.ts';
export { decorrelationKernel, neighbourCorrelation, type DecorrelationKernel } from './decorrelate.ts';
export { computeQa, type SubtractQa } from './qa.ts';
export { exclusionMask, noiseFidelity, sourceFreeFidelity, INVALID_DIFF_BITS, type NoiseFidelity } from './metrics.ts';
