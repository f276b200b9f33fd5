/** core/sim: deterministic synthetic template/science pairs with known truth. */
export { SimError } from './errors.ts';
export { Rng, mix32, POISSON_EXACT_MAX } from './random.ts';
export {
  type Field,
  type PsfSpec,
  type PsfParams,
  FWHM_PER_SIGMA,
  SUBPIXEL,
  MAX_STAMP_RADIUS,
  evalPsf,
  renderPsfStamp,
  renderUnitStamp,
} from './psf-model.ts';
export {
  type EpochSpec,
  type SimConfig,
  type SimStar,
  type SimCosmicRay,
  type SimTruth,
  type SimResult,
  type Epoch,
  simulatePair,
} from './simulate.ts';
