/**
 * The PSF that measurement fits: a pixel-integrated image tabulated on a grid OVERSAMPLE times
 * finer than the pixels, so that a stamp centred anywhere costs one bicubic interpolation per
 * pixel (PSF flux, forced photometry and the dipole fit's many model evaluations).
 *
 * Built from second moments (an elliptical Gaussian; the moments of stars measured on pixels
 * include the pixel's own 1/12 px², which is taken out before integrating over the pixel again)
 * and, for a decorrelated difference, convolved with the decorrelation kernel ψ: its PSF is ψ⊗P.
 */

const OVERSAMPLE = 5;
/** Sub-samples per pixel side when integrating the Gaussian over a pixel. */
const SUB = 4;

export interface PsfModel {
  /** Gaussian-equivalent σ (px): the width detection smooths with and footprints grow by. */
  readonly sigma: number;
  /** Half-width (px) beyond which the model is taken as zero. */
  readonly radius: number;
  /**
   * The PSF (unit total flux) as seen on pixels, for a source at (cx, cy) in pixel coordinates:
   * value of pixel (x, y) for x in [x0, x0 + w), y in [y0, y0 + h), row-major.
   */
  render(cx: number, cy: number, x0: number, y0: number, w: number, h: number, out?: Float64Array): Float64Array;
}

export interface GaussianPsfInput {
  /** Raw second moments of stars measured on pixels (px²). */
  ixx: number;
  iyy: number;
  ixy: number;
  /** Optional extra convolution (e.g. decorrelation ψ), size × size, [(v+h)·size + (u+h)]. */
  kernel?: { values: Float64Array; size: number };
}

/** Pixel-integrated Gaussian of covariance (sxx, syy, sxy) at offset (dx, dy) of the pixel centre. */
function pixelGaussian(sxx: number, syy: number, sxy: number, dx: number, dy: number): number {
  const det = sxx * syy - sxy * sxy;
  const a = syy / det;
  const b = -sxy / det;
  const c = sxx / det;
  const norm = 1 / (2 * Math.PI * Math.sqrt(det) * SUB * SUB);
  let s = 0;
  for (let j = 0; j < SUB; j++) {
    const y = dy + (j + 0.5) / SUB - 0.5;
    for (let i = 0; i < SUB; i++) {
      const x = dx + (i + 0.5) / SUB - 0.5;
      s += Math.exp(-0.5 * (a * x * x + 2 * b * x * y + c * y * y));
    }
  }
  return s * norm;
}

/** Catmull–Rom weights for fractional position t in [0, 1). */
function cubicWeights(t: number, w: Float64Array): void {
  const t2 = t * t;
  const t3 = t2 * t;
  w[0] = 0.5 * (-t3 + 2 * t2 - t);
  w[1] = 0.5 * (3 * t3 - 5 * t2 + 2);
  w[2] = 0.5 * (-3 * t3 + 4 * t2 + t);
  w[3] = 0.5 * (t3 - t2);
}

/** A tabulated model: table[(j)·n + i] = PSF pixel value at offset ((i − c)/OVERSAMPLE, (j − c)/OVERSAMPLE). */
function tabulated(table: Float64Array, n: number, sigma: number, radius: number): PsfModel {
  const c = (n - 1) / 2;
  const wx = new Float64Array(4);
  const wy = new Float64Array(4);
  return {
    sigma,
    radius,
    render(cx, cy, x0, y0, w, h, out = new Float64Array(w * h)) {
      for (let y = 0; y < h; y++) {
        const fy = (y0 + y - cy) * OVERSAMPLE + c;
        const jy = Math.floor(fy);
        cubicWeights(fy - jy, wy);
        for (let x = 0; x < w; x++) {
          const fx = (x0 + x - cx) * OVERSAMPLE + c;
          const ix = Math.floor(fx);
          if (ix < 1 || jy < 1 || ix + 2 >= n || jy + 2 >= n) { out[y * w + x] = 0; continue; }
          cubicWeights(fx - ix, wx);
          let s = 0;
          for (let b = 0; b < 4; b++) {
            const row = (jy - 1 + b) * n + ix - 1;
            s += wy[b]! * (wx[0]! * table[row]! + wx[1]! * table[row + 1]! + wx[2]! * table[row + 2]! + wx[3]! * table[row + 3]!);
          }
          out[y * w + x] = s;
        }
      }
      return out;
    },
  };
}

/** An elliptical Gaussian PSF from star moments, optionally convolved with a kernel. */
export function gaussianPsf(p: GaussianPsfInput): PsfModel {
  const pix = 1 / 12;
  const sxx = Math.max(0.05, p.ixx - pix);
  const syy = Math.max(0.05, p.iyy - pix);
  const sxy = p.ixy;
  if (!(sxx * syy - sxy * sxy > 0)) throw new RangeError(`PSF moments (${p.ixx}, ${p.iyy}, ${p.ixy}) are not positive definite`);
  const sMax = Math.sqrt(Math.max(p.ixx, p.iyy));
  const kh = p.kernel ? (p.kernel.size - 1) / 2 : 0;
  // Tabulate out to 5σ (+ the kernel's half-width): beyond, < 4e-6 of the peak.
  const radius = Math.ceil(5 * sMax) + kh;
  const half = (radius + 2) * OVERSAMPLE; // margin for the cubic's support
  const n = 2 * half + 1;
  const g = new Float64Array(n * n);
  const gh = (radius - kh + 2) * OVERSAMPLE;
  for (let j = -gh; j <= gh; j++) {
    for (let i = -gh; i <= gh; i++) g[(j + half) * n + (i + half)] = pixelGaussian(sxx, syy, sxy, i / OVERSAMPLE, j / OVERSAMPLE);
  }
  let table = g;
  if (p.kernel) {
    // (ψ⊗P)(u) = Σ_m ψ(m)·P(u − m): whole-pixel shifts are OVERSAMPLE table steps.
    const { values, size } = p.kernel;
    table = new Float64Array(n * n);
    for (let v = -kh; v <= kh; v++) {
      for (let u = -kh; u <= kh; u++) {
        const k = values[(v + kh) * size + (u + kh)]!;
        if (k === 0) continue;
        const sx = u * OVERSAMPLE;
        const sy = v * OVERSAMPLE;
        for (let j = Math.max(0, sy); j < Math.min(n, n + sy); j++) {
          const dst = j * n;
          const src = (j - sy) * n - sx;
          for (let i = Math.max(0, sx); i < Math.min(n, n + sx); i++) table[dst + i]! += k * g[src + i]!;
        }
      }
    }
  }
  // LSST's determinant radius of the pixelised PSF: √(√det C + 1/12).
  const detRadius2 = Math.sqrt(sxx * syy - sxy * sxy) + pix;
  return tabulated(table, n, Math.sqrt(detRadius2), radius);
}
