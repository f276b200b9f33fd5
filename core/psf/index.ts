/** core/psf: background, star finding, adaptive moments and the PSF size of an exposure. */
export { type PsfErrorCode, PsfError } from './errors.ts';
export { type Background, type BackgroundOptions, DEFAULT_BAD_BITS, estimateBackground } from './background.ts';
export { type MomentsResult, type AdaptiveMomentsOptions, adaptiveMoments } from './moments.ts';
export {
  type Star,
  type StarFlags,
  type FindStarsOptions,
  type PsfMeasurement,
  type MeasurePsfOptions,
  FWHM_PER_SIGMA,
  findStars,
  measurePsf,
  psfFromStars,
  stellarLocus,
} from './stars.ts';
export { type PsfImage, type PsfImageOptions, psfImage, psfImageSize, gaussianPsfImage } from './psf-image.ts';
