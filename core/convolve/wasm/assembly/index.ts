/** Entry point of the WASM convolution engine (built by core/convolve/wasm/build.ts). */
export { fftSetup, stripWidth, forward2d, inverse2d } from './fft';
export { blockSetup, kernelSpectrum, block } from './block';

/** First free byte after the module's static data: the host lays its buffers out from here. */
export function heapBase(): usize {
  return __heap_base;
}
