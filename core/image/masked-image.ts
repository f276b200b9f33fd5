/**
 * The in-memory exposure: three planes of the same size (science values, mask bits, variance)
 * plus the origin of the pixel grid in the parent exposure, so a tile or cut-out knows where it
 * sits. Local pixel (x, y) is index y*width + x; parent pixel (X, Y) is local (X-x0, Y-y0).
 */
import { type Box, box, contains, boxX1, boxY1 } from './box.ts';

export type ImageErrorCode =
  | 'SIZE_MISMATCH'  // plane lengths do not match width×height
  | 'OUT_OF_BOUNDS'  // a box or sub-image reaches outside the image it refers to
  | 'TOO_LARGE'      // more pixels than we will allocate
  | 'BAD_ARGUMENT'   // malformed size, origin, type or option
  | 'BAD_MASK_PLANE'; // a mask-plane name or bit assignment that cannot be used

/**
 * Every problem with image geometry or image arguments. Derives from RangeError so callers that
 * already catch RangeError (box.ts throws plain RangeError) handle both.
 */
export class ImageError extends RangeError {
  override readonly name = 'ImageError';
  readonly code: ImageErrorCode;

  constructor(code: ImageErrorCode, message: string) {
    super(`${message} [${code}]`);
    this.code = code;
  }
}

export interface MaskedImage {
  width: number;
  height: number;
  x0: number;
  y0: number;
  image: Float32Array;
  mask: Int32Array;
  variance: Float32Array;
}

/** Largest plane we allocate (elements): typed-array indexing and memory both stop being sane past this. */
export const MAX_PIXELS = 2 ** 31;

function checkGeometry(width: number, height: number, x0: number, y0: number): number {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 0 || height < 0) {
    throw new ImageError('BAD_ARGUMENT', `image size must be non-negative integers, got ${width}×${height}`);
  }
  if (!Number.isSafeInteger(x0) || !Number.isSafeInteger(y0)) {
    throw new ImageError('BAD_ARGUMENT', `image origin must be integers, got (${x0}, ${y0})`);
  }
  const n = width * height;
  if (n > MAX_PIXELS) {
    throw new ImageError('TOO_LARGE', `${width}×${height} = ${n} pixels exceeds the limit of ${MAX_PIXELS}`);
  }
  return n;
}

/** A zero-filled image (value 0, no mask bits, variance 0). */
export function createMaskedImage(width: number, height: number, x0 = 0, y0 = 0): MaskedImage {
  const n = checkGeometry(width, height, x0, y0);
  return {
    width,
    height,
    x0,
    y0,
    image: new Float32Array(n),
    mask: new Int32Array(n),
    variance: new Float32Array(n),
  };
}

export interface MaskedImageArrays {
  width: number;
  height: number;
  x0?: number;
  y0?: number;
  image: Float32Array;
  /** Zeros when absent. */
  mask?: Int32Array;
  /** Zeros when absent. */
  variance?: Float32Array;
}

/**
 * Wrap existing planes (not copied: the image shares them) after checking that each has exactly
 * width×height elements of the right type.
 */
export function maskedImageFromArrays(a: MaskedImageArrays): MaskedImage {
  const { width, height } = a;
  const x0 = a.x0 ?? 0;
  const y0 = a.y0 ?? 0;
  const n = checkGeometry(width, height, x0, y0);
  const check = (plane: string, arr: unknown, ctor: Float32ArrayConstructor | Int32ArrayConstructor): void => {
    if (!(arr instanceof ctor)) {
      throw new ImageError('BAD_ARGUMENT', `${plane} plane must be a ${ctor.name}`);
    }
    if (arr.length !== n) {
      throw new ImageError(
        'SIZE_MISMATCH',
        `${plane} plane has ${arr.length} elements, expected ${width}×${height} = ${n}`,
      );
    }
  };
  check('image', a.image, Float32Array);
  if (a.mask !== undefined) check('mask', a.mask, Int32Array);
  if (a.variance !== undefined) check('variance', a.variance, Float32Array);
  return {
    width,
    height,
    x0,
    y0,
    image: a.image,
    mask: a.mask ?? new Int32Array(n),
    variance: a.variance ?? new Float32Array(n),
  };
}

/** The image's extent in parent coordinates. */
export function bbox(mi: MaskedImage): Box {
  return { x0: mi.x0, y0: mi.y0, width: mi.width, height: mi.height };
}

function describe(b: Box): string {
  return `[${b.x0}, ${boxX1(b)})×[${b.y0}, ${boxY1(b)})`;
}

/** Copy rows of all three planes from src to dst; offsets are local element indices of the first row. */
function copyRows(
  src: MaskedImage,
  srcStart: number,
  dst: MaskedImage,
  dstStart: number,
  rowLength: number,
  rows: number,
): void {
  for (let r = 0; r < rows; r++) {
    const s = srcStart + r * src.width;
    const d = dstStart + r * dst.width;
    dst.image.set(src.image.subarray(s, s + rowLength), d);
    dst.mask.set(src.mask.subarray(s, s + rowLength), d);
    dst.variance.set(src.variance.subarray(s, s + rowLength), d);
  }
}

/**
 * A copy of the part of mi inside b, where b is in parent coordinates (the result keeps those
 * coordinates as its origin). The box must lie wholly inside mi.
 */
export function subImage(mi: MaskedImage, b: Box): MaskedImage {
  const sub = box(b.x0, b.y0, b.width, b.height); // validates integers
  const outer = bbox(mi);
  if (!contains(outer, sub)) {
    throw new ImageError('OUT_OF_BOUNDS', `box ${describe(sub)} is not inside image ${describe(outer)}`);
  }
  const out = createMaskedImage(sub.width, sub.height, sub.x0, sub.y0);
  if (sub.width === 0 || sub.height === 0) return out;
  const start = (sub.y0 - mi.y0) * mi.width + (sub.x0 - mi.x0);
  copyRows(mi, start, out, 0, sub.width, sub.height);
  return out;
}

/**
 * Paste src into dst where src's origin says it belongs (parent coordinates). src must lie wholly
 * inside dst; dst is modified in place.
 */
export function setSubImage(dst: MaskedImage, src: MaskedImage): void {
  const outer = bbox(dst);
  const inner = bbox(src);
  if (!contains(outer, inner)) {
    throw new ImageError('OUT_OF_BOUNDS', `image ${describe(inner)} does not fit inside ${describe(outer)}`);
  }
  if (src.width === 0 || src.height === 0) return;
  const start = (src.y0 - dst.y0) * dst.width + (src.x0 - dst.x0);
  copyRows(src, 0, dst, start, src.width, src.height);
}

/** A deep copy (planes are copied, not shared). */
export function cloneMaskedImage(mi: MaskedImage): MaskedImage {
  return {
    width: mi.width,
    height: mi.height,
    x0: mi.x0,
    y0: mi.y0,
    image: mi.image.slice(),
    mask: mi.mask.slice(),
    variance: mi.variance.slice(),
  };
}
