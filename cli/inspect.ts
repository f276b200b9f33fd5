/** `diffim inspect FILE…`: what each HDU holds, for people (table) or machines (--json). */
import { FitsReader, type Hdu } from '../core/fits/index.ts';

export interface HduSummary {
  index: number;
  name: string;
  kind: string;
  bitpix: number;
  axes: number[];
  compression?: { type: string; tile: number[]; quantize: string };
  cards: number;
  keys: Record<string, string | number | boolean | null>;
  warnings: string[];
}

const KEY_CARDS = ['OBJECT', 'FILTER', 'EXPTIME', 'MJD-OBS', 'DATE-OBS', 'GAIN', 'RDNOISE', 'SATURATE', 'BUNIT', 'BSCALE', 'BZERO', 'BLANK', 'CTYPE1', 'CTYPE2'];

export async function inspectFile(path: string, strict = false): Promise<{ file: string; size: number; hdus: HduSummary[]; warnings: string[] }> {
  const r = await FitsReader.open(path, { strict });
  try {
    const hdus = r.hdus.map((h: Hdu): HduSummary => {
      const info = r.imageInfo(h);
      const header = r.imageHeader(h);
      const keys: HduSummary['keys'] = {};
      for (const k of KEY_CARDS) {
        const v = header.get(k);
        if (v !== undefined) keys[k] = typeof v === 'bigint' ? v.toString() : typeof v === 'object' && v !== null ? `(${v.re}, ${v.im})` : v;
      }
      const s: HduSummary = { index: h.index, name: h.name, kind: h.kind, bitpix: info.bitpix, axes: info.axes, cards: h.header.cards.length, keys, warnings: h.warnings };
      if (h.kind === 'compressed-image') {
        const L = r.compressed(h);
        s.compression = { type: L.cmptype, tile: L.tile, quantize: L.quantize };
      }
      return s;
    });
    return { file: path, size: r.hdus.length ? r.hdus[r.hdus.length - 1]!.dataOffset + r.hdus[r.hdus.length - 1]!.dataBytes : 0, hdus, warnings: r.warnings };
  } finally {
    await r.close();
  }
}

export function formatInspect(res: Awaited<ReturnType<typeof inspectFile>>): string {
  const lines = [`${res.file}`];
  for (const h of res.hdus) {
    const dims = h.axes.length ? h.axes.join('×') : '—';
    const comp = h.compression ? ` ${h.compression.type} tiles ${h.compression.tile.join('×')}${h.compression.quantize !== 'NONE' ? ` ${h.compression.quantize}` : ''}` : '';
    const keys = Object.entries(h.keys).map(([k, v]) => `${k}=${v}`).join(' ');
    lines.push(`  ${String(h.index).padStart(2)} ${(h.name || '-').padEnd(12)} ${h.kind.padEnd(16)} BITPIX ${String(h.bitpix).padStart(3)} ${dims.padEnd(12)} ${h.cards} cards${comp}${keys ? '  ' + keys : ''}`);
    for (const w of h.warnings) lines.push(`     warning: ${w}`);
  }
  for (const w of res.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}
