/**
 * Every problem with a FITS file surfaces as one FitsError that says where: the file, the HDU
 * (0 = primary), and the card number or byte offset when known. Readers never throw anything else
 * for bad input, so callers (CLI, pipeline steps) can map it to one line and an exit code.
 */
export type FitsErrorCode =
  | 'EMPTY'          // zero-length file
  | 'NOT_FITS'       // does not start with SIMPLE / is not a FITS file
  | 'BAD_CARD'       // a header card that cannot be parsed (strict mode) or is structurally wrong
  | 'MISSING_KEY'    // a mandatory keyword is absent or out of order
  | 'BAD_VALUE'      // a mandatory keyword has an illegal value (BITPIX, NAXIS, NAXISn, …)
  | 'NO_END'         // header has no END card before end of file
  | 'TRUNCATED'      // the data unit runs past the end of the file
  | 'TOO_LARGE'      // sizes beyond what the file holds or what we will allocate
  | 'UNSUPPORTED'    // valid FITS we do not handle (e.g. an unknown compression)
  | 'BAD_COMPRESSED' // corrupt tile-compressed data
  | 'BAD_TABLE'      // malformed table description or heap
  | 'IO';            // the underlying read or write failed

export interface FitsErrorWhere {
  file?: string;
  hdu?: number;
  card?: number;   // 1-based card number within the HDU's header
  offset?: number; // byte offset in the file
  key?: string;
}

export class FitsError extends Error {
  override readonly name = 'FitsError';
  readonly code: FitsErrorCode;
  readonly file?: string;
  readonly hdu?: number;
  readonly card?: number;
  readonly offset?: number;
  readonly key?: string;
  readonly detail: string;

  constructor(code: FitsErrorCode, detail: string, where: FitsErrorWhere = {}) {
    super(formatMessage(code, detail, where));
    this.code = code;
    this.detail = detail;
    this.file = where.file;
    this.hdu = where.hdu;
    this.card = where.card;
    this.offset = where.offset;
    this.key = where.key;
  }

  /** The same error with more location filled in (inner code often knows less than its caller). */
  withWhere(where: FitsErrorWhere): FitsError {
    return new FitsError(this.code, this.detail, {
      file: this.file ?? where.file,
      hdu: this.hdu ?? where.hdu,
      card: this.card ?? where.card,
      offset: this.offset ?? where.offset,
      key: this.key ?? where.key,
    });
  }
}

function formatMessage(code: FitsErrorCode, detail: string, w: FitsErrorWhere): string {
  const parts: string[] = [];
  if (w.file !== undefined) parts.push(w.file);
  if (w.hdu !== undefined) parts.push(`HDU ${w.hdu}`);
  if (w.card !== undefined) parts.push(`card ${w.card}`);
  if (w.key !== undefined) parts.push(w.key);
  if (w.offset !== undefined) parts.push(`byte ${w.offset}`);
  return `${parts.length ? parts.join(', ') + ': ' : ''}${detail} [${code}]`;
}

/** Upper bound on any single allocation driven by header values (bytes); larger requests fail fast. */
export const MAX_ALLOCATION = 4 * 1024 ** 3;
