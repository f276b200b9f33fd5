/** Kernel errors against truth, as docs/METRICS.md measures them (shared by the kernel tests). */

/** ‖a − b‖₂ / ‖b‖₂. */
export function l2(a: Float64Array, b: Float64Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) { d += (a[i]! - b[i]!) ** 2; n += b[i]! ** 2; }
  return Math.sqrt(d / n);
}

/** ‖(K − K_true) ⊗ P‖ / ‖K_true ⊗ P‖ (K n×n, P m×m): the kernel error as the data see it through the template PSF. */
export function dataSpaceError(k: Float64Array, truth: Float64Array, psf: Float64Array, n: number, m: number): number {
  const N = n + m - 1;
  const a = new Float64Array(N * N);
  const b = new Float64Array(N * N);
  for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) {
    const dk = k[j * n + i]! - truth[j * n + i]!;
    const tk = truth[j * n + i]!;
    for (let q = 0; q < m; q++) for (let p = 0; p < m; p++) {
      a[(j + q) * N + i + p]! += dk * psf[q * m + p]!;
      b[(j + q) * N + i + p]! += tk * psf[q * m + p]!;
    }
  }
  let d = 0;
  let t = 0;
  for (let i = 0; i < N * N; i++) { d += a[i]! ** 2; t += b[i]! ** 2; }
  return Math.sqrt(d / t);
}
