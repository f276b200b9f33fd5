/**
 * The DIA source record: what detection and measurement produce for each merged footprint, and
 * what the catalogue writers (catalog.ts) turn into sources.fits, sources.csv and sources.reg.
 * Positions are 0-based pixel coordinates in the parent (full exposure) frame, as LSST reports
 * them: the centre of the first pixel is (0, 0).
 */

export interface SourceFlags {
  /** Part of the PSF-fit stamp or an aperture falls off the image or on EDGE pixels. */
  edge: boolean;
  /** SAT at the centroid pixel (of the difference, i.e. from the science image). */
  saturatedCenter: boolean;
  /** SAT_TEMPLATE at the centroid pixel. */
  satTemplateCenter: boolean;
  /** NO_DATA inside the PSF-fit stamp. */
  noData: boolean;
  /** INTRP in the 3×3 pixels round the centroid. */
  interpolatedCenter: boolean;
  /** CR in the 3×3 pixels round the centroid. */
  crCenter: boolean;
  /** The PSF flux could not be measured (no usable pixels). */
  psfFluxFailed: boolean;
  /** A merged footprint with both polarities whose dipole fit failed or was skipped (too large). */
  dipoleFitFailed: boolean;
}

export interface DipoleFit {
  /** Lobe fluxes (both positive numbers: the negative lobe's flux is reported as its absolute value). */
  posFlux: number;
  posFluxErr: number;
  negFlux: number;
  negFluxErr: number;
  posX: number;
  posY: number;
  negX: number;
  negY: number;
  /** |pos − neg| in px. */
  separation: number;
  /** Direction from the negative to the positive lobe, degrees counter-clockwise from +x. */
  orientation: number;
  /** χ² per degree of freedom of the two-lobe model over the footprint. */
  chi2dof: number;
}

export interface DiaSource {
  /** 64-bit: exposure id in the high bits, a running counter in the low bits (see ids.ts). */
  id: bigint;
  x: number;
  y: number;
  ra: number | null;
  dec: number | null;
  /** Pixel of the detection peak. */
  peakX: number;
  peakY: number;
  /** Signed peak significance of the PSF-smoothed difference (σ). */
  significance: number;
  psfFlux: number;
  psfFluxErr: number;
  /** One per configured aperture radius. */
  apFlux: number[];
  apFluxErr: number[];
  /** Second moments (px²) of the signal (sign-corrected for negative sources), PSF-weight corrected. */
  ixx: number;
  iyy: number;
  ixy: number;
  /** psfFlux / psfFluxErr. */
  snr: number;
  isNegative: boolean;
  isDipole: boolean;
  dipole: DipoleFit | null;
  /** Pixels in the merged, grown footprint. */
  footprintArea: number;
  nPositivePeaks: number;
  nNegativePeaks: number;
  /** Forced PSF photometry at (x, y) on the science image and on the matched template. */
  scienceFlux: number;
  scienceFluxErr: number;
  templateFlux: number;
  templateFluxErr: number;
  flags: SourceFlags;
}
