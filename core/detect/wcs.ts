/**
 * Pixel → sky for the celestial WCS the field uses on images (FITS WCS Papers I–II; SIP, Shupe et
 * al. 2005; TPV, the SCAMP/IRAF polynomial): gnomonic (TAN) projection with a linear part from
 * CD, PC × CDELT or CDELT (+ CROTA2), optional SIP (A_p_q, B_p_q, applied to the pixel offsets) or
 * TPV (PVi_k, applied to the intermediate world coordinates). Other projections are refused with
 * the reason, so sky columns are left empty rather than wrong.
 *
 * Pixels are 0-based array indices here (FITS pixel = index + 1), as LSST reports centroids.
 */
import type { Header } from '../fits/header.ts';

const D2R = Math.PI / 180;
const R2D = 180 / Math.PI;

export interface CelestialWcs {
  /** 0-based array (x, y) → [ra, dec] in degrees, ra in [0, 360). */
  pixelToSky(x: number, y: number): [number, number];
  /** 'TAN', 'TAN-SIP' or 'TPV'. */
  projection: string;
  radesys: string;
}

export type WcsParse = { wcs: CelestialWcs } | { wcs: null; reason: string };

/** SIP polynomial terms: Σ c·u^p·v^q. */
interface PolyTerm { p: number; q: number; c: number }

/** TPV term k → powers of (x, y, r): the 40 terms of the convention, r = √(x² + y²). */
const TPV_TERMS: ReadonlyArray<readonly [number, number, number]> = (() => {
  const t: Array<[number, number, number]> = [];
  for (let n = 0; n <= 7; n++) {
    for (let j = 0; j <= n; j++) t.push([n - j, j, 0]);
    if (n % 2 === 1) t.push([0, 0, n]); // r, r³, r⁵, r⁷ follow the odd orders
  }
  return t;
})();

function num(h: Header, key: string): number | undefined {
  const v = h.number(key);
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}

function sipTerms(h: Header, letter: 'A' | 'B'): PolyTerm[] | null {
  const order = h.integer(`${letter}_ORDER`);
  if (order === undefined) return null;
  const terms: PolyTerm[] = [];
  for (let p = 0; p <= order; p++) {
    for (let q = 0; p + q <= order; q++) {
      const c = num(h, `${letter}_${p}_${q}`);
      if (c !== undefined && c !== 0) terms.push({ p, q, c });
    }
  }
  return terms;
}

function evalPoly(terms: PolyTerm[], u: number, v: number): number {
  let s = 0;
  for (const { p, q, c } of terms) s += c * u ** p * v ** q;
  return s;
}

function tpvCoefficients(h: Header, axis: 1 | 2): Float64Array {
  const c = new Float64Array(TPV_TERMS.length);
  let any = false;
  for (let k = 0; k < c.length; k++) {
    const v = num(h, `PV${axis}_${k}`);
    if (v !== undefined) { c[k] = v; any = true; }
  }
  // No coefficients at all: the identity (term 1 is x for axis 1, y for axis 2 after the swap).
  if (!any) c[1] = 1;
  return c;
}

function evalTpv(c: Float64Array, x: number, y: number): number {
  const r = Math.sqrt(x * x + y * y);
  let s = 0;
  for (let k = 0; k < c.length; k++) {
    const ck = c[k]!;
    if (ck === 0) continue;
    const [a, b, e] = TPV_TERMS[k]!;
    s += ck * x ** a * y ** b * r ** e;
  }
  return s;
}

/**
 * The linear part: CD (preferred), else PC × CDELT, else CDELT with CROTA2. Degrees per pixel.
 */
function linearPart(h: Header): [number, number, number, number] | string {
  const cd = ['CD1_1', 'CD1_2', 'CD2_1', 'CD2_2'].map((k) => num(h, k));
  if (cd.some((v) => v !== undefined)) return cd.map((v) => v ?? 0) as [number, number, number, number];
  const c1 = num(h, 'CDELT1');
  const c2 = num(h, 'CDELT2');
  if (c1 === undefined || c2 === undefined) return 'no CD matrix and no CDELT1/CDELT2';
  const pc = ['PC1_1', 'PC1_2', 'PC2_1', 'PC2_2'].map((k) => num(h, k));
  if (pc.some((v) => v !== undefined)) {
    const [p11, p12, p21, p22] = [pc[0] ?? 1, pc[1] ?? 0, pc[2] ?? 0, pc[3] ?? 1];
    return [c1 * p11, c1 * p12, c2 * p21, c2 * p22];
  }
  const rot = (num(h, 'CROTA2') ?? 0) * D2R;
  return [c1 * Math.cos(rot), -c2 * Math.sin(rot), c1 * Math.sin(rot), c2 * Math.cos(rot)];
}

/** The celestial WCS of a header, or why there is none we can use. */
export function parseWcs(h: Header): WcsParse {
  const t1 = h.string('CTYPE1')?.trim();
  const t2 = h.string('CTYPE2')?.trim();
  if (t1 === undefined || t2 === undefined) return { wcs: null, reason: 'no CTYPE1/CTYPE2' };
  const m1 = /^RA--([-A-Z]{4})(-SIP)?$/.exec(t1);
  const m2 = /^DEC-([-A-Z]{4})(-SIP)?$/.exec(t2);
  if (!m1 || !m2) return { wcs: null, reason: `celestial axes must be RA---xxx, DEC--xxx in that order, got '${t1}', '${t2}'` };
  const proj = m1[1]!.replace(/^-+/, '');
  if (proj !== m2[1]!.replace(/^-+/, '')) return { wcs: null, reason: `CTYPE1 and CTYPE2 projections differ: '${t1}', '${t2}'` };
  if (proj !== 'TAN' && proj !== 'TPV') return { wcs: null, reason: `projection ${proj} is not supported (TAN, TAN-SIP, TPV)` };
  const sip = m1[2] !== undefined || m2[2] !== undefined;
  const crpix1 = num(h, 'CRPIX1');
  const crpix2 = num(h, 'CRPIX2');
  const ra0 = num(h, 'CRVAL1');
  const dec0 = num(h, 'CRVAL2');
  if (crpix1 === undefined || crpix2 === undefined || ra0 === undefined || dec0 === undefined) return { wcs: null, reason: 'CRPIX1/2 or CRVAL1/2 missing' };
  const lin = linearPart(h);
  if (typeof lin === 'string') return { wcs: null, reason: lin };
  const [cd11, cd12, cd21, cd22] = lin;
  if (cd11 * cd22 - cd12 * cd21 === 0) return { wcs: null, reason: 'the linear transformation is singular' };
  const a = sip ? sipTerms(h, 'A') : null;
  const b = sip ? sipTerms(h, 'B') : null;
  if (sip && (!a || !b)) return { wcs: null, reason: '-SIP without A_ORDER/B_ORDER' };
  const pv1 = proj === 'TPV' ? tpvCoefficients(h, 1) : null;
  const pv2 = proj === 'TPV' ? tpvCoefficients(h, 2) : null;
  // Native longitude of the celestial pole: 180° for zenithal projections unless LONPOLE says otherwise.
  const phiP = (num(h, 'LONPOLE') ?? (dec0 >= 90 ? 0 : 180)) * D2R;
  const sd0 = Math.sin(dec0 * D2R);
  const cd0 = Math.cos(dec0 * D2R);
  const radesys = h.string('RADESYS')?.trim() ?? h.string('RADECSYS')?.trim() ?? ((num(h, 'EQUINOX') ?? 2000) < 1984 ? 'FK4' : 'ICRS');
  return {
    wcs: {
      projection: sip ? 'TAN-SIP' : proj,
      radesys,
      pixelToSky(x: number, y: number): [number, number] {
        let u = x + 1 - crpix1;
        let v = y + 1 - crpix2;
        if (a && b) {
          const du = evalPoly(a, u, v);
          const dv = evalPoly(b, u, v);
          u += du;
          v += dv;
        }
        let xi = cd11 * u + cd12 * v;
        let eta = cd21 * u + cd22 * v;
        if (pv1 && pv2) {
          const x2 = evalTpv(pv1, xi, eta);
          eta = evalTpv(pv2, eta, xi); // axis 2 swaps the roles of ξ and η
          xi = x2;
        }
        // Gnomonic deprojection: native (φ, θ), then rotate to celestial (α, δ).
        const rTheta = Math.sqrt(xi * xi + eta * eta);
        const phi = rTheta === 0 ? 0 : Math.atan2(xi, -eta);
        const theta = Math.atan2(R2D, rTheta);
        const st = Math.sin(theta);
        const ct = Math.cos(theta);
        const dphi = phi - phiP;
        const ra = ra0 + R2D * Math.atan2(-ct * Math.sin(dphi), st * cd0 - ct * sd0 * Math.cos(dphi));
        const dec = R2D * Math.asin(Math.max(-1, Math.min(1, st * sd0 + ct * cd0 * Math.cos(dphi))));
        return [((ra % 360) + 360) % 360, dec];
      },
    },
  };
}
