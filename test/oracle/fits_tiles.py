#!/usr/bin/python3
"""Oracle helper for test/fits-compress-codecs.test.ts (needs astropy + numpy).

  fits_tiles.py gen DIR
      Writes the uncompressed test images (fixed seed) to DIR/in_*.fits and the astropy-compressed
      variants to DIR/ap_*.fits (astropy's CompImageHDU, i.e. cfitsio's encoders).

  fits_tiles.py dump SPEC.json
      SPEC is a JSON list of {"name", "compressed", "funpacked" (path or null), "original"}.
      Prints one JSON object per file: the compression keywords, each tile's raw compressed bytes
      and per-row ZSCALE / ZZERO / ZBLANK (read with disable_image_compression=True), the image as
      astropy decompresses it, the image as funpack wrote it, and the original input image.
      Arrays are base64 of little-endian bytes with their numpy dtype string.
"""
import base64
import json
import sys

import numpy as np
from astropy.io import fits


def b64(a):
    return base64.b64encode(bytes(a)).decode('ascii')


def arr(a):
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    le = a.astype(a.dtype.newbyteorder('<'))
    return {'dtype': le.dtype.name, 'shape': list(a.shape), 'b64': b64(le.tobytes())}


def num(x):
    """A float for JSON: non-finite values as the strings 'NaN', 'Infinity', '-Infinity'."""
    x = float(x)
    if np.isnan(x):
        return 'NaN'
    if np.isinf(x):
        return 'Infinity' if x > 0 else '-Infinity'
    return x


def make_images():
    rng = np.random.default_rng(20240611)
    ny, nx = 97, 131
    yy, xx = np.mgrid[0:ny, 0:nx]
    sky = 1000.0 + 12.0 * rng.standard_normal((ny, nx))
    for _ in range(6):
        cx, cy = rng.uniform(5, nx - 5), rng.uniform(5, ny - 5)
        flux, sig = rng.uniform(2e3, 6e4), rng.uniform(1.0, 3.0)
        sky += flux / (2 * np.pi * sig * sig) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig * sig))
    f = sky.astype(np.float32)
    # scattered NaNs, a NaN patch, a fully NaN row (an all-null tile), exact zeros
    f[rng.integers(0, ny, 40), rng.integers(0, nx, 40)] = np.nan
    f[10:14, 20:30] = np.nan
    f[50, :] = np.nan
    f[30:36, 60:90] = 0.0
    f[rng.integers(0, ny, 30), rng.integers(0, nx, 30)] = 0.0
    f[70, 5] = -0.0
    f64 = (sky * 1.000001 - 3.5).astype(np.float64)
    f64[rng.integers(0, ny, 20), rng.integers(0, nx, 20)] = np.nan

    i16 = np.round(sky - 1000.0).astype(np.int64)
    i16 = np.clip(i16 * 7, -32768, 32767).astype(np.int16)
    i16[0, :8] = [-32768, 32767, -32768, 32767, 0, -1, 32767, -32768]   # wrap-around differences
    i16[5, :] = rng.integers(-32768, 32768, nx)                        # high-entropy row
    i16[6, :] = 123                                                    # low-entropy row

    i32 = (np.round(sky).astype(np.int64) * 1000 - 1_000_000).astype(np.int32)
    i32[0, :6] = [-2**31, 2**31 - 1, -2**31, 0, 2**31 - 1, -1]
    i32[3, :] = rng.integers(-2**31, 2**31, nx, dtype=np.int64).astype(np.int32)
    i32[4, :] = -7

    u8 = np.clip(np.round((sky - 950.0) / 2.0), 0, 255).astype(np.uint8)
    u8[0, :6] = [0, 255, 0, 255, 128, 127]
    u8[2, :] = rng.integers(0, 256, nx)
    # the same image without NaNs (astropy 5.x's writer mishandles NaNs when quantizing)
    f32c = np.where(np.isnan(f), np.float32(1000.0), f).astype(np.float32)
    return {'f32': f, 'f32c': f32c, 'f64': f64, 'i16': i16, 'i32': i32, 'u8': u8}


def gen(d):
    imgs = make_images()
    for k, v in imgs.items():
        fits.PrimaryHDU(v).writeto(f'{d}/in_{k}.fits', overwrite=True)

    def comp(name, data, **kw):
        hdu = fits.CompImageHDU(data, **kw)
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(f'{d}/{name}.fits', overwrite=True)

    f = imgs['f32c']
    # one file with NaNs: astropy 5.x writes NULL_VALUE pixels without a ZBLANK keyword/column
    comp('ap_rice_f32nan_d1', imgs['f32'], compression_type='RICE_1', quantize_level=16, quantize_method=1,
         dither_seed=1234)
    comp('ap_rice_f32_d1', f, compression_type='RICE_1', quantize_level=16, quantize_method=1, dither_seed=1234)
    comp('ap_rice_f32_d2', f, compression_type='RICE_1', quantize_level=4, quantize_method=2, dither_seed=9999,
         tile_size=[40, 30])
    comp('ap_rice_f32_nd', f, compression_type='RICE_1', quantize_level=8, quantize_method=-1)
    comp('ap_gzip1_f32_d2', f, compression_type='GZIP_1', quantize_level=16, quantize_method=2, dither_seed=17)
    comp('ap_gzip2_f32_d1', f, compression_type='GZIP_2', quantize_level=16, quantize_method=1, dither_seed=5000,
         tile_size=[131, 10])
    comp('ap_gzip2_f32_nd', f, compression_type='GZIP_2', quantize_level=2, quantize_method=-1)
    comp('ap_rice_f64_d1', imgs['f64'], compression_type='RICE_1', quantize_level=16, quantize_method=1,
         dither_seed=42)
    comp('ap_rice_i16', imgs['i16'], compression_type='RICE_1')
    comp('ap_gzip2_i16', imgs['i16'], compression_type='GZIP_2', tile_size=[64, 64])
    comp('ap_rice_i32', imgs['i32'], compression_type='RICE_1', tile_size=[50, 20])
    comp('ap_gzip2_i32', imgs['i32'], compression_type='GZIP_2')
    comp('ap_rice_u8', imgs['u8'], compression_type='RICE_1')


def col(table, name):
    names = [c.upper() for c in table.columns.names]
    if name not in names:
        return None
    return table.field(table.columns.names[names.index(name)])


_originals = {}


def original(path):
    if path not in _originals:
        with fits.open(path, memmap=False) as hl:
            _originals[path] = arr(hl[0].data)
    return _originals[path]


def dump_one(spec):
    out = {'name': spec['name']}
    with fits.open(spec['compressed'], disable_image_compression=True, memmap=False) as hl:
        hdu = next(h for h in hl if h.header.get('ZIMAGE', False))
        h = hdu.header
        zn = h['ZNAXIS']
        out['zbitpix'] = h['ZBITPIX']
        out['znaxis'] = [h[f'ZNAXIS{k}'] for k in range(1, zn + 1)]
        out['ztile'] = [h.get(f'ZTILE{k}', out['znaxis'][0] if k == 1 else 1) for k in range(1, zn + 1)]
        out['zcmptype'] = h['ZCMPTYPE'].strip()
        out['zquantiz'] = h.get('ZQUANTIZ', None)
        out['zdither0'] = h.get('ZDITHER0', None)
        out['zblank_key'] = h.get('ZBLANK', None)
        zvals = {}
        k = 1
        while f'ZNAME{k}' in h:
            zvals[h[f'ZNAME{k}'].strip().upper()] = h.get(f'ZVAL{k}')
            k += 1
        out['zvals'] = zvals
        t = hdu.data
        cdata, gdata = col(t, 'COMPRESSED_DATA'), col(t, 'GZIP_COMPRESSED_DATA')
        zscale, zzero, zblank = col(t, 'ZSCALE'), col(t, 'ZZERO'), col(t, 'ZBLANK')
        rows = []
        for r in range(len(t)):
            c = cdata[r] if cdata is not None else None
            g = gdata[r] if gdata is not None else None
            rows.append({
                'c': b64(np.asarray(c, dtype=np.uint8).tobytes()) if c is not None and len(c) else '',
                'g': b64(np.asarray(g, dtype=np.uint8).tobytes()) if g is not None and len(g) else '',
                'zscale': num(zscale[r]) if zscale is not None else None,
                'zzero': num(zzero[r]) if zzero is not None else None,
                'zblank': int(zblank[r]) if zblank is not None else None,
            })
        out['rows'] = rows
    with fits.open(spec['compressed'], memmap=False) as hl:
        out['astropy'] = arr(next(h for h in hl if isinstance(h, fits.CompImageHDU)).data)
    out['funpack'] = None
    if spec.get('funpacked'):
        with fits.open(spec['funpacked'], memmap=False) as hl:
            hdu = next(h for h in hl if h.data is not None)
            out['funpack'] = arr(hdu.data)
    out['original'] = original(spec['original'])
    return out


def main():
    if sys.argv[1] == 'gen':
        gen(sys.argv[2])
    elif sys.argv[1] == 'dump':
        with open(sys.argv[2]) as fh:
            specs = json.load(fh)
        json.dump([dump_one(s) for s in specs], sys.stdout)
    else:
        raise SystemExit(f'unknown command {sys.argv[1]}')


if __name__ == '__main__':
    main()
