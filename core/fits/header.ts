/**
 * FITS headers: 80-character cards, parsed and written per FITS 4.0 §4, with the conventions real
 * files use (CONTINUE long strings, HIERARCH). Values keep their kind (an integer 1 and a float 1.0
 * differ to astropy and so to us) and card order and comments are preserved.
 *
 * Lenient parsing accepts what astropy reads with warnings (free-format mandatory cards, non-ASCII
 * bytes, lower-case exponents…) and reports each deviation; strict parsing refuses them.
 */
import { FitsError } from './errors.ts';

export interface Complex {
  re: number;
  im: number;
}

export type CardKind = 'string' | 'logical' | 'integer' | 'float' | 'complex' | 'undefined' | 'commentary';
export type CardValue = string | number | bigint | boolean | Complex | null;

export interface Card {
  /** Keyword as astropy names it: upper case; HIERARCH cards without the "HIERARCH " prefix. */
  key: string;
  kind: CardKind;
  /** string | boolean | number (integer or float) | bigint (integers beyond 2^53) | Complex | null (undefined) */
  value: CardValue;
  comment: string;
  /** Written with the HIERARCH convention (long or spaced keyword). */
  hierarch?: boolean;
}

export const CARD = 80;
export const BLOCK = 2880;
export const CARDS_PER_BLOCK = BLOCK / CARD;

const COMMENTARY = new Set(['', 'COMMENT', 'HISTORY']);

/** Mandatory keywords whose values the standard requires in fixed format (right-justified in col 30). */
const FIXED_FORMAT_KEYS = /^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|TFIELDS|GROUPS|BLOCKED)$/;

export class Header {
  readonly cards: Card[];
  private index: Map<string, number> | undefined;

  constructor(cards: Card[] = []) {
    this.cards = cards;
  }

  clone(): Header {
    return new Header(this.cards.map((c) => ({ ...c })));
  }

  private lookup(key: string): number {
    if (!this.index) {
      this.index = new Map();
      for (let i = 0; i < this.cards.length; i++) {
        const c = this.cards[i]!;
        if (c.kind === 'commentary') continue;
        const k = c.key.toUpperCase();
        if (!this.index.has(k)) this.index.set(k, i);
      }
    }
    return this.index.get(key.toUpperCase()) ?? -1;
  }

  has(key: string): boolean {
    return this.lookup(key) >= 0;
  }

  card(key: string): Card | undefined {
    const i = this.lookup(key);
    return i >= 0 ? this.cards[i] : undefined;
  }

  get(key: string): CardValue | undefined {
    return this.card(key)?.value;
  }

  /** Numeric value (integer or float) or undefined; bigint integers are converted when exact. */
  number(key: string): number | undefined {
    const c = this.card(key);
    if (!c) return undefined;
    if (c.kind === 'integer' || c.kind === 'float') {
      // Integers beyond 2^53 come back rounded; a caller needing them exactly uses bigint().
      if (typeof c.value === 'bigint') return Number(c.value);
      return c.value as number;
    }
    return undefined;
  }

  /** Integer value as a JS number (throws FitsError when present but not an integer that fits). */
  integer(key: string): number | undefined {
    const c = this.card(key);
    if (!c) return undefined;
    if (c.kind !== 'integer') throw new FitsError('BAD_VALUE', `${key} must be an integer, found ${describe(c)}`, { key });
    const v = c.value as number | bigint;
    if (typeof v === 'bigint') {
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new FitsError('TOO_LARGE', `${key} = ${v} is beyond 2^53`, { key });
      }
      return Number(v);
    }
    return v;
  }

  bigint(key: string): bigint | undefined {
    const c = this.card(key);
    if (!c || c.kind !== 'integer') return undefined;
    return BigInt(c.value as number | bigint);
  }

  string(key: string): string | undefined {
    const c = this.card(key);
    return c && c.kind === 'string' ? (c.value as string) : undefined;
  }

  bool(key: string): boolean | undefined {
    const c = this.card(key);
    return c && c.kind === 'logical' ? (c.value as boolean) : undefined;
  }

  /** All COMMENT (or HISTORY, or blank-key) texts in order. */
  commentary(key: 'COMMENT' | 'HISTORY' | ''): string[] {
    return this.cards.filter((c) => c.kind === 'commentary' && c.key === key).map((c) => c.value as string);
  }

  /**
   * Set a keyword: replaces the first existing card (keeping its comment unless one is given), or
   * appends. `kind` forces 'float' for integral numbers that must be written as floats.
   */
  set(key: string, value: CardValue, comment?: string, kind?: CardKind): this {
    const k = kind ?? kindOf(value);
    const i = this.lookup(key);
    const upper = normaliseKey(key);
    if (i >= 0) {
      const old = this.cards[i]!;
      this.cards[i] = { ...old, kind: k, value, comment: comment ?? old.comment };
    } else {
      this.cards.push({ key: upper, kind: k, value, comment: comment ?? '', hierarch: needsHierarch(upper) || undefined });
      this.index = undefined;
    }
    return this;
  }

  /** Insert a card after the card with key `after` (or at the end when absent). */
  insertAfter(after: string, card: Card): this {
    const i = this.lookup(after);
    this.cards.splice(i >= 0 ? i + 1 : this.cards.length, 0, card);
    this.index = undefined;
    return this;
  }

  add(card: Card): this {
    this.cards.push(card);
    this.index = undefined;
    return this;
  }

  addCommentary(key: 'COMMENT' | 'HISTORY' | '', text: string): this {
    // Long commentary text is split into several cards of 72 characters, as astropy writes it.
    const chunks = text.length === 0 ? [''] : text.match(/[\s\S]{1,72}/g)!;
    for (const t of chunks) this.add({ key, kind: 'commentary', value: t, comment: '' });
    return this;
  }

  remove(key: string): boolean {
    const i = this.lookup(key);
    if (i < 0) return false;
    this.cards.splice(i, 1);
    this.index = undefined;
    return true;
  }

  keys(): string[] {
    return this.cards.map((c) => c.key);
  }
}

function describe(c: Card): string {
  return c.kind === 'string' ? `'${c.value as string}'` : c.kind === 'undefined' ? 'no value' : `${c.kind} ${String(c.value)}`;
}

function kindOf(value: CardValue): CardKind {
  if (value === null) return 'undefined';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'logical';
  if (typeof value === 'bigint') return 'integer';
  if (typeof value === 'number') return Number.isInteger(value) && !Object.is(value, -0) ? 'integer' : 'float';
  return 'complex';
}

function normaliseKey(key: string): string {
  const k = key.trim();
  if (/^HIERARCH /i.test(k)) return k.slice(9).trim();
  return needsHierarch(k.toUpperCase()) ? k : k.toUpperCase();
}

function needsHierarch(key: string): boolean {
  return key.length > 8 || !/^[A-Z0-9_-]*$/.test(key);
}

// ---------------------------------------------------------------------------------------------
// Parsing

export interface ParseOptions {
  strict: boolean;
  file?: string;
  hdu?: number;
  /** Byte offset in the file of the header's first card (for error messages). */
  offset?: number;
}

/** One raw card, already decoded to a string of 80 characters. */
interface RawCard {
  text: string;
  index: number; // 1-based card number
}

const NUMBER_NFSC = /^([+-])? *(\.\d+|\d+(?:\.\d*)?) *(?:([deDE]) *([+-])? *(\d+))?/;
const NUMBER_FSC = /^[+-]?(?:\.\d+|\d+(?:\.\d*)?)(?:[DE][+-]?\d+)?$/;

/**
 * Parse header cards up to (not including) END. `cards` holds the raw card images in file order;
 * `deviations` collects what lenient mode accepted, and strict mode throws on the first of them.
 */
export function parseCards(raw: string[], opts: ParseOptions, deviations: string[]): Card[] {
  const where = (card: number, key?: string) => ({ file: opts.file, hdu: opts.hdu, card, key });
  const deviate = (card: number, key: string, what: string): void => {
    if (opts.strict) throw new FitsError('BAD_CARD', what, where(card, key || undefined));
    deviations.push(`card ${card}${key ? ` (${key})` : ''}: ${what}`);
  };

  const out: Card[] = [];
  let lastString: { card: Card; parts: string[]; comments: string[] } | undefined;

  for (let i = 0; i < raw.length; i++) {
    const r: RawCard = { text: raw[i]!, index: i + 1 };
    const text = r.text;
    if (!/^[\x20-\x7e]*$/.test(text)) {
      deviate(r.index, text.slice(0, 8).trim(), 'card contains characters outside printable ASCII');
    }
    const key8 = text.slice(0, 8);

    if (key8 === 'CONTINUE' && text[8] !== '=') {
      if (!lastString) {
        deviate(r.index, 'CONTINUE', 'CONTINUE card does not follow a string-valued card');
        out.push({ key: 'CONTINUE', kind: 'commentary', value: text.slice(8).trimEnd(), comment: '' });
        continue;
      }
      const parsed = parseStringAndComment(text.slice(8).trim());
      if (!parsed) {
        deviate(r.index, 'CONTINUE', 'CONTINUE card without a quoted string');
        continue;
      }
      lastString.parts.push(stripAmpersand(parsed.value));
      if (parsed.comment) lastString.comments.push(parsed.comment);
      lastString.card.value = lastString.parts.join('');
      lastString.card.comment = lastString.comments.join(' ');
      continue;
    }
    lastString = undefined;

    // HIERARCH convention: "HIERARCH A B C = value / comment"
    if (key8 === 'HIERARCH' && text[8] === ' ') {
      const eq = text.indexOf('=', 9);
      if (eq < 0) {
        out.push({ key: 'HIERARCH', kind: 'commentary', value: text.slice(8).trimEnd(), comment: '' });
        continue;
      }
      const key = text.slice(9, eq).trim();
      const card = parseValueCard(key, text.slice(eq + 1), r.index, opts, deviate);
      card.hierarch = true;
      out.push(card);
      if (card.kind === 'string') lastString = { card, parts: [stripAmpersand(card.value as string)], comments: card.comment ? [card.comment] : [] };
      continue;
    }

    let keyTrim = key8.trimEnd();
    if (keyTrim !== keyTrim.trimStart() || !/^[A-Za-z0-9_-]*$/.test(keyTrim)) {
      deviate(r.index, keyTrim.trim(), `illegal keyword "${keyTrim}"`);
      keyTrim = keyTrim.trim();
    }
    if (/[a-z]/.test(keyTrim)) {
      deviate(r.index, keyTrim, 'lower-case letters in keyword');
      keyTrim = keyTrim.toUpperCase();
    }

    if (COMMENTARY.has(keyTrim)) {
      out.push({ key: keyTrim, kind: 'commentary', value: text.slice(8).trimEnd(), comment: '' });
      continue;
    }

    if (text.slice(8, 10) === '= ' || (text[8] === '=' && text.length === 9)) {
      const card = parseValueCard(keyTrim, text.slice(10), r.index, opts, deviate);
      if (FIXED_FORMAT_KEYS.test(keyTrim)) checkFixedFormat(card, text, r.index, deviate);
      out.push(card);
      if (card.kind === 'string') {
        card.value = card.value as string;
        // A trailing '&' is dropped only when CONTINUE cards follow (as astropy reads it).
        lastString = { card, parts: [stripAmpersand(card.value)], comments: card.comment ? [card.comment] : [] };
      }
      continue;
    }

    // Value indicator somewhere else in the first ten columns (astropy accepts "KEY= value").
    const eq = text.indexOf('= ');
    if (eq >= 0 && eq <= 9 && eq < 8) {
      const key = text.slice(0, eq).trim().toUpperCase();
      deviate(r.index, key, `value indicator in column ${eq + 1} instead of 9`);
      const card = parseValueCard(key, text.slice(eq + 2), r.index, opts, deviate);
      out.push(card);
      continue;
    }

    // A keyword without a value indicator is commentary text (FITS 4.0 §4.1.2.2).
    out.push({ key: keyTrim, kind: 'commentary', value: text.slice(8).trimEnd(), comment: '' });
  }
  return out;
}

function stripAmpersand(s: string): string {
  return s.endsWith('&') ? s.slice(0, -1) : s;
}

type Deviate = (card: number, key: string, what: string) => void;

function checkFixedFormat(card: Card, text: string, index: number, deviate: Deviate): void {
  const field = text.slice(10, 30);
  let ok: boolean;
  if (card.kind === 'string') ok = text[10] === "'";
  else if (card.kind === 'logical' || card.kind === 'integer' || card.kind === 'float') ok = field.length === 20 && field.trimStart() === field.trimStart().trimEnd() && field[19] !== ' ' && field.trim().length > 0;
  else ok = true;
  if (!ok) deviate(index, card.key, `mandatory keyword ${card.key} not in fixed format (value must end in column 30)`);
}

/** Parse the part of a card after the value indicator. */
function parseValueCard(key: string, rest: string, index: number, opts: ParseOptions, deviate: Deviate): Card {
  let i = 0;
  while (i < rest.length && rest[i] === ' ') i++;
  const fail = (what: string): Card => {
    if (opts.strict) throw new FitsError('BAD_CARD', what, { file: opts.file, hdu: opts.hdu, card: index, key });
    deviate(index, key, what);
    // Keep the raw text so nothing is lost; astropy calls such cards unparsable.
    const slash = rest.indexOf('/');
    return { key, kind: 'string', value: (slash >= 0 ? rest.slice(0, slash) : rest).trim(), comment: slash >= 0 ? rest.slice(slash + 1).trim() : '' };
  };

  let kind: CardKind;
  let value: CardValue;
  const c = rest[i];
  if (c === "'") {
    const s = parseQuoted(rest, i);
    if (!s) return fail('unterminated string value');
    kind = 'string';
    value = s.value.replace(/ +$/, '');
    i = s.end;
  } else if ((c === 'T' || c === 'F') && (i + 1 === rest.length || rest[i + 1] === ' ' || rest[i + 1] === '/')) {
    kind = 'logical';
    value = c === 'T';
    i++;
  } else if (c === '(') {
    const close = rest.indexOf(')', i);
    if (close < 0) return fail('unterminated complex value');
    const parts = rest.slice(i + 1, close).split(',');
    if (parts.length !== 2) return fail('complex value needs two parts');
    const re = parseNumber(parts[0]!.trim());
    const im = parseNumber(parts[1]!.trim());
    if (!re || !im || re.rest || im.rest) return fail('bad complex value');
    kind = 'complex';
    value = { re: Number(re.value), im: Number(im.value) };
    i = close + 1;
  } else if (c === undefined || c === '/') {
    kind = 'undefined';
    value = null;
  } else {
    const n = parseNumber(rest.slice(i));
    if (!n) return fail(`unparsable value "${rest.slice(i).split('/')[0]!.trim()}"`);
    if (!n.fsc) deviate(index, key, `number "${n.text.trim()}" not in FITS fixed format (spaces or lower-case exponent)`);
    kind = n.integer ? 'integer' : 'float';
    value = n.value;
    i += n.length;
  }
  // After the value: spaces, then optionally "/ comment".
  while (i < rest.length && rest[i] === ' ') i++;
  let comment = '';
  if (i < rest.length) {
    if (rest[i] !== '/') return fail(`unexpected text after value: "${rest.slice(i).trim()}"`);
    comment = rest.slice(i + 1).replace(/^ +/, '').trimEnd();
  }
  return { key, kind, value, comment };
}

function parseQuoted(s: string, start: number): { value: string; end: number } | undefined {
  let out = '';
  let i = start + 1;
  for (;;) {
    const q = s.indexOf("'", i);
    if (q < 0) return undefined;
    out += s.slice(i, q);
    if (s[q + 1] === "'") {
      out += "'";
      i = q + 2;
      continue;
    }
    return { value: out, end: q + 1 };
  }
}

function parseStringAndComment(s: string): { value: string; comment: string } | undefined {
  if (s[0] !== "'") return undefined;
  const q = parseQuoted(s, 0);
  if (!q) return undefined;
  const rest = s.slice(q.end).trim();
  const comment = rest.startsWith('/') ? rest.slice(1).trim() : '';
  return { value: q.value.replace(/ +$/, ''), comment };
}

interface ParsedNumber {
  value: number | bigint;
  integer: boolean;
  length: number;
  text: string;
  fsc: boolean;
  rest: string;
}

function parseNumber(s: string): ParsedNumber | undefined {
  const m = NUMBER_NFSC.exec(s);
  if (!m) return undefined;
  const [text, sign = '', digits, expChar, expSign = '', expDigits] = m;
  const next = s[text.length];
  if (next !== undefined && next !== ' ' && next !== '/' && next !== ')' && next !== ',') return undefined;
  const integer = expChar === undefined && !digits!.includes('.');
  let value: number | bigint;
  if (integer) {
    const b = BigInt(sign + digits);
    value = b >= -BigInt(Number.MAX_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  } else {
    value = Number(`${sign}${digits}${expChar ? 'e' + expSign + expDigits : ''}`);
  }
  return { value, integer, length: text.length, text, fsc: NUMBER_FSC.test(text.trimEnd()), rest: s.slice(text.length).trim() };
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Format a float so it reads back as the same double and is unmistakably a float. */
export function formatFloat(v: number): string {
  if (!Number.isFinite(v)) throw new FitsError('BAD_VALUE', `cannot write non-finite value ${v} in a header`);
  if (Object.is(v, -0)) return '-0.0';
  let s = String(v).toUpperCase(); // shortest round-trip representation
  if (s.includes('E')) {
    const [m, e] = s.split('E') as [string, string];
    s = `${m.includes('.') ? m : m + '.0'}E${e.startsWith('-') || e.startsWith('+') ? e : '+' + e}`;
  } else if (!s.includes('.')) {
    s += '.0';
  }
  return s;
}

function formatValue(card: Card): string {
  switch (card.kind) {
    case 'logical':
      return (card.value ? 'T' : 'F').padStart(20);
    case 'integer':
      return String(card.value).padStart(20);
    case 'float':
      return formatFloat(card.value as number).padStart(20);
    case 'complex': {
      const c = card.value as Complex;
      return `(${formatFloat(c.re)}, ${formatFloat(c.im)})`.padStart(20);
    }
    case 'undefined':
      return '';
    default:
      throw new Error('unreachable');
  }
}

function quote(s: string): string {
  const q = `'${s.replace(/'/g, "''")}`;
  // Fixed format: at least 8 characters between the quotes.
  return (q.length < 9 ? q.padEnd(9) : q) + "'";
}

function assertAscii(s: string, what: string): void {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new FitsError('BAD_VALUE', `${what} contains characters outside printable ASCII`);
}

/** Card images (80 characters each) for one logical card; long strings become CONTINUE cards. */
export function formatCard(card: Card): string[] {
  assertAscii(card.key, 'keyword');
  if (card.kind === 'commentary') {
    const text = String(card.value);
    assertAscii(text, `${card.key || 'blank'} card text`);
    const out: string[] = [];
    for (let i = 0; i === 0 || i < text.length; i += 72) out.push((card.key.padEnd(8) + text.slice(i, i + 72)).padEnd(CARD));
    return out;
  }
  assertAscii(card.comment, `comment of ${card.key}`);
  const hier = card.hierarch || needsHierarch(card.key);
  const prefix = hier ? `HIERARCH ${card.key} = ` : `${card.key.padEnd(8)}= `;
  if (prefix.length > CARD - 2) throw new FitsError('BAD_VALUE', `keyword ${card.key} too long`);

  if (card.kind === 'string') {
    const s = String(card.value);
    assertAscii(s, `value of ${card.key}`);
    // Quoted value left-justified in columns 11-30, as astropy renders it (its CHECKSUM check re-renders cards).
    const single = prefix + (hier ? quote(s) : quote(s).padEnd(20));
    if (single.length <= CARD) return [withComment(single, card.comment)];
    return continueCards(prefix, s, card.comment);
  }
  let v = formatValue(card);
  if (hier) v = v.trimStart();
  const img = prefix + v;
  if (img.length > CARD) throw new FitsError('BAD_VALUE', `value of ${card.key} does not fit in a card`);
  return [withComment(img, card.comment)];
}

function withComment(img: string, comment: string): string {
  if (!comment) return img.padEnd(CARD);
  const full = `${img} / ${comment}`;
  return (full.length <= CARD ? full : full.slice(0, CARD)).padEnd(CARD);
}

/** The CONTINUE long-string convention: each piece ends with '&', doubled quotes never split. */
function continueCards(prefix: string, s: string, comment: string): string[] {
  const out: string[] = [];
  const pieces: string[] = [];
  let rest = s;
  let room = CARD - prefix.length - 3; // quotes and '&'
  while (rest.length) {
    let n = Math.min(rest.length, room);
    // Do not split a quote that will be doubled across two cards; count doubled width.
    let width = 0;
    let k = 0;
    while (k < rest.length) {
      const w = rest[k] === "'" ? 2 : 1;
      if (width + w > room) break;
      width += w;
      k++;
    }
    n = Math.max(1, k);
    pieces.push(rest.slice(0, n));
    rest = rest.slice(n);
    room = CARD - 10 - 3;
  }
  for (let p = 0; p < pieces.length; p++) {
    const last = p === pieces.length - 1;
    const body = `'${pieces[p]!.replace(/'/g, "''")}${last ? '' : '&'}'`;
    out.push((p === 0 ? prefix + body : `CONTINUE  ${body}`).padEnd(CARD));
  }
  if (comment) {
    // The comment goes on its own CONTINUE card when it does not fit on the last one.
    const lastImg = out[out.length - 1]!.trimEnd();
    if (lastImg.length + 3 + comment.length <= CARD) out[out.length - 1] = withComment(lastImg, comment);
    else {
      out[out.length - 1] = (lastImg.slice(0, -1) + "&'").padEnd(CARD);
      let c = comment;
      while (c.length) {
        const take = c.slice(0, CARD - 10 - 5);
        c = c.slice(take.length);
        out.push(`CONTINUE  '${c.length ? '&' : ''}' / ${take}`.padEnd(CARD));
      }
    }
  }
  return out;
}

/** Whole header as bytes: cards, END, padded with spaces to a multiple of 2880. */
export function serializeHeader(header: Header): Uint8Array {
  const images: string[] = [];
  let needLongstrn = false;
  for (const c of header.cards) {
    const imgs = formatCard(c);
    if (imgs.length > 1 && c.kind === 'string') needLongstrn = true;
    images.push(...imgs);
  }
  if (needLongstrn && !header.has('LONGSTRN')) {
    // Announce the CONTINUE convention as the OGIP convention asks, right after the mandatory cards.
    const at = mandatoryEnd(header);
    images.splice(at, 0, ...formatCard({ key: 'LONGSTRN', kind: 'string', value: 'OGIP 1.0', comment: 'The OGIP long string convention may be used' }));
  }
  images.push('END'.padEnd(CARD));
  const nBlocks = Math.ceil((images.length * CARD) / BLOCK);
  const bytes = new Uint8Array(nBlocks * BLOCK).fill(0x20);
  let o = 0;
  for (const img of images) {
    for (let j = 0; j < CARD; j++) bytes[o + j] = img.charCodeAt(j);
    o += CARD;
  }
  return bytes;
}

/** Number of card images occupied by the mandatory keywords at the start of the header. */
function mandatoryEnd(header: Header): number {
  let n = 0;
  for (const c of header.cards) {
    if (/^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|TFIELDS)$/.test(c.key)) n++;
    else break;
  }
  return n;
}
