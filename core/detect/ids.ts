/**
 * DIA source ids as LSST's makeIdFactory builds them: the exposure id in the high bits and a
 * running counter (from 1) in the low COUNTER_BITS, so ids are unique across exposures and fit a
 * signed 64-bit column. Ids are handed out only to the sources that are kept, after merging.
 */
export const COUNTER_BITS = 24;
/** Largest exposure id that keeps the id below 2^63. */
export const MAX_EXPOSURE_ID = (1n << BigInt(63 - COUNTER_BITS)) - 1n;

export function makeIdFactory(exposureId: number | bigint): () => bigint {
  const e = BigInt(exposureId);
  if (e < 0n || e > MAX_EXPOSURE_ID) throw new RangeError(`exposure id ${e} must be in [0, ${MAX_EXPOSURE_ID}]`);
  const high = e << BigInt(COUNTER_BITS);
  let counter = 0n;
  const max = (1n << BigInt(COUNTER_BITS)) - 1n;
  return () => {
    counter++;
    if (counter > max) throw new RangeError(`more than ${max} sources for exposure ${e}`);
    return high | counter;
  };
}
