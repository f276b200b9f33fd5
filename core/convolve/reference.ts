/**
 * The slow, exact reference: convolution with the spatially varying kernel evaluated at every
 * output pixel (K(x, y) = Σ_s f_s(x, y)·K_s), and the difference image built from it. The fast
 * engine is checked against this; tests of the kernel solution subtract with it.
 *
 * Output planes: image K⊗ref, variance K²⊗V_ref (exact for independent pixels), mask = OR of the
 * ref mask over the kernel footprint; pixels within the kernel half-width of the border get EDGE
 * (and their value is not computed: 0).
 */
import { createMaskedImage, type MaskedImage } from '../image/masked-image.ts';
import { maskBit } from '../image/mask.ts';
import { backgroundEvaluator, type KernelSolution, spatialKernelImages } from '../kernel/solution.ts';
import { spatialEvaluator } from '../kernel/spatial.ts';

export function convolveReference(ref: MaskedImage, sol: KernelSolution): MaskedImage {
  const size = sol.basis.size;
  const h = (size - 1) / 2;
  const np = size * size;
  const terms = spatialKernelImages(sol);
  const ns = terms.length;
  const f = spatialEvaluator(sol.spatial.type, sol.spatial.kernelOrder, sol.spatial.domain);
  const fv = new Float64Array(ns);
  const k = new Float64Array(np);
  const out = createMaskedImage(ref.width, ref.height, ref.x0, ref.y0);
  const edge = maskBit('EDGE');
  const W = ref.width;
  for (let y = 0; y < ref.height; y++) {
    for (let x = 0; x < W; x++) {
      const o = y * W + x;
      if (x < h || y < h || x >= W - h || y >= ref.height - h) {
        out.mask[o] = edge;
        continue;
      }
      f(x + ref.x0, y + ref.y0, fv);
      k.fill(0);
      for (let s = 0; s < ns; s++) {
        const c = fv[s]!;
        const t = terms[s]!;
        for (let p = 0; p < np; p++) k[p]! += c * t[p]!;
      }
      let sv = 0;
      let vv = 0;
      let mm = 0;
      for (let v = -h; v <= h; v++) {
        const row = (y - v) * W + x;
        const ko = (v + h) * size + h;
        for (let u = -h; u <= h; u++) {
          const kk = k[ko + u]!;
          const i = row - u;
          sv += kk * ref.image[i]!;
          vv += kk * kk * ref.variance[i]!;
          mm |= ref.mask[i]!;
        }
      }
      out.image[o] = sv;
      out.variance[o] = vv;
      out.mask[o] = mm;
    }
  }
  return out;
}

/**
 * Difference by the reference convolution. convolveTemplate: D = S − (K⊗T + B); convolveScience
 * (fit T ≈ K⊗S + B): D = (K⊗S + B − T)/ΣK, in the science's photometric units. Masks are OR-ed,
 * variances added.
 */
export function subtractReference(science: MaskedImage, template: MaskedImage, sol: KernelSolution): MaskedImage {
  const convolveTemplate = sol.mode === 'convolveTemplate';
  const conv = convolveReference(convolveTemplate ? template : science, sol);
  const other = convolveTemplate ? science : template;
  const out = createMaskedImage(science.width, science.height, science.x0, science.y0);
  const k = sol.kernelSum;
  const background = backgroundEvaluator(sol);
  for (let y = 0; y < out.height; y++) {
    for (let x = 0; x < out.width; x++) {
      const o = y * out.width + x;
      const b = background(x + out.x0, y + out.y0);
      if (convolveTemplate) {
        out.image[o] = other.image[o]! - conv.image[o]! - b;
        out.variance[o] = other.variance[o]! + conv.variance[o]!;
      } else {
        out.image[o] = (conv.image[o]! + b - other.image[o]!) / k;
        out.variance[o] = (conv.variance[o]! + other.variance[o]!) / (k * k);
      }
      out.mask[o] = conv.mask[o]! | other.mask[o]!;
    }
  }
  return out;
}
