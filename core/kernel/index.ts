/** core/kernel: PSF-matching kernel bases, candidates, records, the spatial solve and the solution. */
export { KernelError, type KernelErrorCode } from './errors.ts';
export { type KernelConfig, type KernelPreset, type ConvolutionMode, PRESETS, resolveKernelConfig, validateKernelConfig } from './config.ts';
export { type BasisSpec, type BasisChoice, basisCount, basisImages, chooseBasis, renormalizeImages } from './basis.ts';
export { type SpatialDomain, type SpatialType, nSpatialTerms, spatialEvaluator } from './spatial.ts';
export { type CandidateRecord, type CandidateSite, RecordBuilder, fitHalfWidth, stampHalfWidth, transformRecord } from './record.ts';
export { type SelectionResult, selectCandidates, resolvedFwhmLimit, cellIndex, candidateId, truncateCells, cellReserve, RESERVE_PER_CELL } from './select.ts';
export { type SolveContext, type ResidualStats, solveKernel, mergeRecords, residualStats } from './solve.ts';
export {
  type KernelSolution, type KernelSolutionQa, type CandidateReport,
  kernelImageAt, backgroundAt, backgroundEvaluator, spatialKernelImages, serializeSolution, parseSolution,
} from './solution.ts';
export { type FitPlan, type FitOptions, type PsfShape, fitKernel, planFit, buildRecords, chooseMode, measureShape, gaussianSumSquares } from './fit.ts';
export { solveSymmetric, type SolveResult } from './linalg.ts';
