/** core/detect: DIA source detection and measurement on a difference image, ids, sky coordinates, catalogues. */
export { type DetectConfig, DEFAULT_DETECT_CONFIG, DetectError, resolveDetectConfig } from './config.ts';
export { detectAndMeasure, type DetectInputs, type DetectResult, type DetectQa } from './detect.ts';
export { type PsfModel, type GaussianPsfInput, gaussianPsf } from './psf-model.ts';
export { type DiaSource, type DipoleFit, type SourceFlags } from './source.ts';
export { type CelestialWcs, type WcsParse, parseWcs } from './wcs.ts';
export { makeIdFactory, COUNTER_BITS, MAX_EXPOSURE_ID } from './ids.ts';
