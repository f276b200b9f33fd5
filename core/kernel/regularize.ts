/**
 * Laplacian regularisation of kernel images (Becker et al. 2012; ip_diffim's centralDifference
 * type): the penalty λ·‖L κ‖² on the kernel pixels κ, where L applies a 5- or 9-point Laplacian
 * stencil at interior pixels and the border penalty at the border (pulling the kernel's edge to 0).
 * Expressed in basis coordinates (κ = Q a): H = (LQ)ᵀ(LQ), nb×nb, row-major.
 */
import { type BasisSpec, basisImages } from './basis.ts';
import { gramMatrix } from './linalg.ts';

export interface RegularizationSpec {
  type: 'centralDifference' | 'forwardDifference';
  stencil: 5 | 9;
  /** forwardDifference: penalise the 0th (value), 1st and/or 2nd differences. */
  orders: number[];
  borderPenalty: number;
}

/** Rows of the difference operator applied to one kernel image (forward differences along x and y). */
function forwardRows(img: Float64Array, size: number, orders: number[], borderPenalty: number): Float64Array {
  const rows: number[] = [];
  const at = (x: number, y: number) => img[y * size + x]!;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const border = x === 0 || y === 0 || x === size - 1 || y === size - 1;
      if (border && borderPenalty > 0) rows.push(borderPenalty * at(x, y));
      for (const o of orders) {
        if (o === 0) rows.push(at(x, y));
        else if (o === 1) {
          if (x + 1 < size) rows.push(at(x + 1, y) - at(x, y));
          if (y + 1 < size) rows.push(at(x, y + 1) - at(x, y));
        } else if (o === 2) {
          if (x + 2 < size) rows.push(at(x + 2, y) - 2 * at(x + 1, y) + at(x, y));
          if (y + 2 < size) rows.push(at(x, y + 2) - 2 * at(x, y + 1) + at(x, y));
        }
      }
    }
  }
  return Float64Array.from(rows);
}

export function regularizationMatrix(spec: BasisSpec, reg: RegularizationSpec): Float64Array {
  const size = spec.size;
  const np = size * size;
  const { stencil, borderPenalty } = reg;
  const coeffs = stencil === 5
    ? [0, 1, 0, 1, -4, 1, 0, 1, 0]
    : [1 / 6, 4 / 6, 1 / 6, 4 / 6, -20 / 6, 4 / 6, 1 / 6, 4 / 6, 1 / 6];
  const images = basisImages(spec);
  // LQ: the operator applied to each basis image.
  const lq = images.map((img) => {
    if (reg.type === 'forwardDifference') return forwardRows(img, size, reg.orders, borderPenalty);
    const out = new Float64Array(np);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const i = y * size + x;
        if (x > 0 && y > 0 && x < size - 1 && y < size - 1) {
          let s = 0;
          for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += coeffs[(dy + 1) * 3 + dx + 1]! * img[i + dx + dy * size]!;
          out[i] = s;
        } else {
          out[i] = borderPenalty * img[i]!;
        }
      }
    }
    return out;
  });
  // H = (LQ)ᵀ(LQ); delta-function images are almost empty, so the Gram matrix goes by non-zeros.
  return gramMatrix(lq);
}
