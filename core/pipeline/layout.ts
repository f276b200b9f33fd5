/**
 * The tile grid: cores are squares of tileSize (a whole number of spatial cells) anchored at the
 * exposure's corner, the last row and column taking what is left; each tile reads its core grown
 * by a margin and clipped to the exposure. Cores partition the exposure, so every output pixel,
 * candidate and source belongs to exactly one tile.
 */
import { type Box, clip, grow } from '../image/box.ts';
import { PipelineError } from './errors.ts';

export interface Tile {
  id: number;
  /** The pixels this tile is responsible for (parent coordinates). */
  core: Box;
  /** What the fit step reads: the core and the margin star finding and candidate stamps need. */
  fitBox: Box;
  /** What the convolve step reads: the core and the margin convolution, decorrelation and detection need. */
  convolveBox: Box;
}

export function tileGrid(exposure: Box, tileSize: number, fitMargin: number, convolveMargin: number): Tile[] {
  if (!Number.isInteger(tileSize) || tileSize < 1) throw new PipelineError('BAD_INPUT', `tileSize must be a positive integer, got ${tileSize}`);
  const nx = Math.max(1, Math.ceil(exposure.width / tileSize));
  const ny = Math.max(1, Math.ceil(exposure.height / tileSize));
  const tiles: Tile[] = [];
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      const x0 = exposure.x0 + i * tileSize;
      const y0 = exposure.y0 + j * tileSize;
      const core = { x0, y0, width: Math.min(tileSize, exposure.x0 + exposure.width - x0), height: Math.min(tileSize, exposure.y0 + exposure.height - y0) };
      tiles.push({ id: tiles.length, core, fitBox: clip(grow(core, fitMargin), exposure), convolveBox: clip(grow(core, convolveMargin), exposure) });
    }
  }
  return tiles;
}
