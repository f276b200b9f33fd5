/**
 * Integer pixel boxes in the parent exposure's pixel coordinates (0-based). A box covers columns
 * [x0, x0+width) and rows [y0, y0+height); the far edges are exclusive so that widths add up and
 * tiles abut without overlap. Origins may be negative (a grown box may hang off the image).
 *
 * Boxes are plain immutable-by-convention objects; every helper returns a new one. Invalid
 * arguments throw RangeError (ImageError in masked-image.ts derives from it, so one catch covers
 * both; box.ts stays free of imports so every other module can depend on it).
 */
export interface Box {
  x0: number;
  y0: number;
  width: number;
  height: number;
}

/** A checked box: integer origin, non-negative integer size. */
export function box(x0: number, y0: number, width: number, height: number): Box {
  if (!Number.isSafeInteger(x0) || !Number.isSafeInteger(y0)) {
    throw new RangeError(`box origin must be integers, got (${x0}, ${y0})`);
  }
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`box size must be non-negative integers, got ${width}×${height}`);
  }
  return { x0, y0, width, height };
}

/** Exclusive right edge. */
export function boxX1(b: Box): number {
  return b.x0 + b.width;
}

/** Exclusive top edge. */
export function boxY1(b: Box): number {
  return b.y0 + b.height;
}

export function boxArea(b: Box): number {
  return b.width * b.height;
}

function isEmpty(b: Box): boolean {
  return b.width <= 0 || b.height <= 0;
}

/**
 * The overlap of two boxes, or null when they share no pixel (boxes that only touch along an
 * edge share none, and an empty box overlaps nothing).
 */
export function intersect(a: Box, b: Box): Box | null {
  const x0 = Math.max(a.x0, b.x0);
  const y0 = Math.max(a.y0, b.y0);
  const x1 = Math.min(boxX1(a), boxX1(b));
  const y1 = Math.min(boxY1(a), boxY1(b));
  if (x1 <= x0 || y1 <= y0) return null;
  return { x0, y0, width: x1 - x0, height: y1 - y0 };
}

/** True when every pixel of inner lies in outer. An empty inner box is contained in anything. */
export function contains(outer: Box, inner: Box): boolean {
  if (isEmpty(inner)) return true;
  return (
    inner.x0 >= outer.x0 &&
    inner.y0 >= outer.y0 &&
    boxX1(inner) <= boxX1(outer) &&
    boxY1(inner) <= boxY1(outer)
  );
}

/** True when pixel (x, y) lies in the box (integer pixel, or any real point within the edges). */
export function containsPoint(b: Box, x: number, y: number): boolean {
  return x >= b.x0 && x < boxX1(b) && y >= b.y0 && y < boxY1(b);
}

/**
 * The box grown by n pixels on every side (n < 0 shrinks). Shrinking past zero leaves an empty
 * box centred where the old one was, rather than a negative size.
 */
export function grow(b: Box, n: number): Box {
  if (!Number.isSafeInteger(n)) throw new RangeError(`grow amount must be an integer, got ${n}`);
  let { x0, width } = b;
  let { y0, height } = b;
  if (width + 2 * n >= 0) {
    x0 -= n;
    width += 2 * n;
  } else {
    x0 += width >> 1;
    width = 0;
  }
  if (height + 2 * n >= 0) {
    y0 -= n;
    height += 2 * n;
  } else {
    y0 += height >> 1;
    height = 0;
  }
  return { x0, y0, width, height };
}

/**
 * The part of b inside bounds. Unlike intersect this always returns a box: when nothing is left,
 * an empty box whose origin is b's origin clamped into bounds (useful as a loop range).
 */
export function clip(b: Box, bounds: Box): Box {
  const inside = intersect(b, bounds);
  if (inside) return inside;
  const x0 = Math.min(Math.max(b.x0, bounds.x0), boxX1(bounds));
  const y0 = Math.min(Math.max(b.y0, bounds.y0), boxY1(bounds));
  return { x0, y0, width: 0, height: 0 };
}

/** Same origin and size. (Two empty boxes at different places are not equal.) */
export function boxEquals(a: Box, b: Box): boolean {
  return a.x0 === b.x0 && a.y0 === b.y0 && a.width === b.width && a.height === b.height;
}
