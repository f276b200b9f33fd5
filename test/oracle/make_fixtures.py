#!/usr/bin/python3
"""make_fixtures.py OUTDIR -- deterministic synthetic FITS fixtures for diffim's reader tests.

Writes FITS files into OUTDIR (created if needed) using astropy + numpy with fixed seeds, a few
files written byte by byte (cards astropy would normalise), and tile-compressed copies made with
CFITSIO's fpack (Debian libcfitsio-bin).  Prints the manifest as a JSON list on stdout and also
writes it to OUTDIR/manifest.json.  Manifest entry:

    { "file": name relative to OUTDIR,
      "exercises": what the fixture is for,
      "maker": "astropy" | "raw" (hand-written bytes) | "patched" (astropy, then bytes patched)
               | "fpack",
      "nonstandard": true if fitsverify is EXPECTED to report warnings/errors,
      "lossy": true for quantized floating-point compression (values are astropy's/CFITSIO's
               dequantized ones, not the source image's),
      "optional": true for features a reader may legitimately reject (HCOMPRESS, PLIO, ASCII
                  tables...),
      "source": for fpack copies, the uncompressed fixture they were made from (absent
                otherwise),
      "compressed": true for tile-compressed images; those also carry
      "funpack_ok": false when CFITSIO's funpack cannot decompress the file,
      "astropy_matches_funpack": false when astropy's own decompression differs from astropy's
                reading of the funpack'ed file (then the funpack'ed file is the reference) }

Known astropy 5.2.1 (Debian bookworm) problems these fixtures expose (see the flags):
  * writing: a NaN in a quantized float tile makes the whole tile NaN (RICE row tiles) or
    garbage (astropy issue #11212), so astropy-compressed float fixtures contain no NaNs;
  * writing: uint16 CompImageHDU puts BSCALE/BZERO right after TFIELDS; funpack then fails
    ("1st key not SIMPLE or XTENSION");
  * reading: the ZBLANK header keyword written by fpack is ignored, so NaNs in fpack-quantized
    floats come back as numbers; BITPIX 8 + BZERO -128 compressed images come back as float32.

Everything is deterministic: fixed numpy seeds, fixed dither seeds (astropy dither_seed=N,
fpack -qN / -qzN), no dates, no checksums.  Total size is a few MB.
"""

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
from astropy.io import fits

W, H = 64, 48  # default image size (NAXIS1, NAXIS2)

MANIFEST = []
OUT = "."


def add(file, exercises, maker="astropy", nonstandard=False, lossy=False, optional=False,
        source=None, compressed=False, funpack_ok=True, astropy_matches_funpack=True):
    e = {"file": file, "exercises": exercises, "maker": maker, "nonstandard": nonstandard,
         "lossy": lossy, "optional": optional, "compressed": compressed}
    if source is not None:
        e["source"] = source
    if compressed:
        e["funpack_ok"] = funpack_ok
        e["astropy_matches_funpack"] = astropy_matches_funpack
    MANIFEST.append(e)


def path(name):
    return os.path.join(OUT, name)


def write(hdus, name):
    if not isinstance(hdus, (list, tuple)):
        hdus = [hdus]
    fits.HDUList(list(hdus)).writeto(path(name), overwrite=True, output_verify="exception")


def rng(seed):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- raw card writer


def card(text):
    if len(text) > 80:
        raise ValueError("card longer than 80 chars: %r" % text)
    if not all(32 <= ord(ch) <= 126 for ch in text):
        raise ValueError("non-printable-ASCII card: %r" % text)
    return text.ljust(80)


def kv(key, value, comment=None, fixed=True):
    """key = value / comment; value is the literal value text; fixed = right-justified to col 30."""
    v = value.rjust(20) if fixed else value
    s = key.ljust(8) + "= " + v
    if comment is not None:
        s += " / " + comment
    return card(s)


def header_bytes(cards):
    text = "".join(cards) + card("END")
    pad = (-len(text)) % 2880
    return (text + " " * pad).encode("ascii")


def data_bytes(arr):
    b = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder(">")).tobytes()
    return b + b"\0" * ((-len(b)) % 2880)


def write_raw(name, hdus):
    """hdus = [(cards, numpy array or None), ...]"""
    with open(path(name), "wb") as fh:
        for cards, arr in hdus:
            fh.write(header_bytes(cards))
            if arr is not None:
                fh.write(data_bytes(arr))


def insert_cards(name, hdu_index, after_key, new_cards):
    """Rewrite file `name` with `new_cards` (80-char images) inserted into HDU `hdu_index`'s
    header right after the card whose keyword is `after_key` (data bytes are left untouched)."""
    with open(path(name), "rb") as fh:
        raw = fh.read()
    with fits.open(path(name)) as f:
        f.readall()
        spans = [(h._header_offset, h._data_offset, h._data_offset + h._data_size)
                 for h in f]
    hstart, dstart, dend = spans[hdu_index]
    text = raw[hstart:dstart].decode("ascii")
    cards = [text[i:i + 80] for i in range(0, len(text), 80)]
    end = next(i for i, c in enumerate(cards) if c.startswith("END "))
    cards = cards[:end]
    pos = next(i for i, c in enumerate(cards) if c[:8].rstrip() == after_key) + 1
    cards[pos:pos] = new_cards
    dpad = (-(dend - dstart)) % 2880
    out = raw[:hstart] + header_bytes(cards) + raw[dstart:dend + dpad] + raw[dend + dpad:]
    with open(path(name), "wb") as fh:
        fh.write(out)


# --------------------------------------------------------------------------- images


def ramp_image(dtype, lo, hi, seed, shape=(H, W)):
    r = rng(seed)
    info = np.iinfo(dtype)
    a = r.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64 if info.min < 0 or
                   info.max < 2 ** 63 else np.uint64).astype(dtype)
    a.flat[0] = info.min if lo <= info.min else a.flat[0]
    a.flat[1] = info.max if hi >= info.max else a.flat[1]
    return a


def star_field(seed, shape=(H, W), sky=100.0, noise=5.0, nstars=6):
    r = rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img = sky + r.normal(0.0, noise, size=shape)
    for _ in range(nstars):
        x0, y0 = r.uniform(4, shape[1] - 4), r.uniform(4, shape[0] - 4)
        flux, sig = r.uniform(500, 5000), r.uniform(1.2, 2.5)
        img += flux / (2 * np.pi * sig * sig) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) /
                                                       (2 * sig * sig))
    return img


def make_bitpix():
    a8 = ramp_image(np.uint8, 0, 255, 8)
    write(fits.PrimaryHDU(a8), "bitpix8.fits")
    add("bitpix8.fits", "BITPIX 8 (uint8), 64x48, incl. 0 and 255")

    a16 = ramp_image(np.int16, -32768, 32767, 16)
    write(fits.PrimaryHDU(a16), "bitpix16.fits")
    add("bitpix16.fits", "BITPIX 16 (int16), 64x48, incl. -32768 and 32767")

    a32 = ramp_image(np.int32, -2 ** 31, 2 ** 31 - 1, 32)
    write(fits.PrimaryHDU(a32), "bitpix32.fits")
    add("bitpix32.fits", "BITPIX 32 (int32), 64x48, full range")

    a64 = ramp_image(np.int64, -2 ** 63, 2 ** 63 - 1, 64)
    a64.flat[2] = 2 ** 53 + 1
    a64.flat[3] = -(2 ** 53) - 1
    a64.flat[4] = 2 ** 63 - 1
    write(fits.PrimaryHDU(a64), "bitpix64.fits")
    add("bitpix64.fits", "BITPIX 64 (int64), 64x48, values beyond 2^53 and the int64 extremes")

    f32 = star_field(1032).astype(np.float32)
    f32[5, 7] = np.nan
    f32[10, 0:5] = np.nan
    f32[20, 20] = np.inf
    f32[20, 21] = -np.inf
    f32[21, 20] = -0.0
    f32[21, 21] = np.float32(1e-45)  # denormal
    f32[21, 22] = np.finfo(np.float32).max
    write(fits.PrimaryHDU(f32), "bitpix-32.fits")
    add("bitpix-32.fits", "BITPIX -32 (float32) star field with NaNs, +-inf, -0.0, a denormal, FLT_MAX")

    f64 = star_field(1064).astype(np.float64)
    f64[0, 0] = np.nan
    f64[47, 63] = np.nan
    f64[30, 30] = -0.0
    f64[30, 31] = 5e-324
    f64[30, 32] = 1e300
    write(fits.PrimaryHDU(f64), "bitpix-64.fits")
    add("bitpix-64.fits", "BITPIX -64 (float64) star field with NaNs, -0.0, a denormal, 1e300")


def scaled_hdu(raw, bscale, bzero, blank=None, extra=None):
    h = fits.PrimaryHDU(raw)
    h.header["BSCALE"] = bscale
    h.header["BZERO"] = bzero
    if blank is not None:
        h.header["BLANK"] = blank
    for k, v in (extra or {}).items():
        h.header[k] = v
    return h


def make_scaled():
    r = rng(116)
    raw16 = r.integers(-32000, 32000, size=(H, W)).astype(np.int16)
    write(scaled_hdu(raw16, 0.01, 100.0), "scaled_int16.fits")
    add("scaled_int16.fits", "BITPIX 16 with BSCALE=0.01 BZERO=100 (astropy -> float32)")

    raw32 = r.integers(-2 ** 31, 2 ** 31 - 1, size=(H, W)).astype(np.int32)
    write(scaled_hdu(raw32, 0.01, 100.0), "scaled_int32.fits")
    add("scaled_int32.fits", "BITPIX 32 with BSCALE=0.01 BZERO=100 (astropy -> float64)")

    u16 = ramp_image(np.uint16, 0, 65535, 216)
    write(fits.PrimaryHDU(u16), "uint16.fits")
    add("uint16.fits", "unsigned 16-bit: BITPIX 16, BZERO=32768 (astropy -> uint16)")

    u32 = ramp_image(np.uint32, 0, 2 ** 32 - 1, 232)
    write(fits.PrimaryHDU(u32), "uint32.fits")
    add("uint32.fits", "unsigned 32-bit: BITPIX 32, BZERO=2147483648 (astropy -> uint32)")

    u64 = ramp_image(np.uint64, 0, 2 ** 64 - 1, 264)
    u64.flat[2] = 2 ** 63
    u64.flat[3] = 2 ** 53 + 1
    write(fits.PrimaryHDU(u64), "uint64.fits")
    add("uint64.fits",
        "unsigned 64-bit: BITPIX 64, BZERO=9223372036854775808 (astropy -> uint64)")

    i8 = ramp_image(np.int8, -128, 127, 108)
    write(fits.PrimaryHDU(i8), "int8.fits")
    add("int8.fits", "signed 8-bit: BITPIX 8, BZERO=-128 (astropy -> int8)")

    b16 = r.integers(-1000, 1000, size=(H, W)).astype(np.int16)
    b16[0, :5] = -32768
    b16[13, 17] = -32768
    write(scaled_hdu(b16, 1.0, 0.0, blank=-32768), "blank_int16.fits")
    add("blank_int16.fits",
        "BITPIX 16 with BLANK=-32768, BSCALE=1 BZERO=0 (astropy -> float32 with NaN at BLANK)")

    bs16 = r.integers(-1000, 1000, size=(H, W)).astype(np.int16)
    bs16[3, 3:9] = -999
    write(scaled_hdu(bs16, 0.5, 1000.0, blank=-999), "blank_scaled_int16.fits")
    add("blank_scaled_int16.fits", "BITPIX 16, BLANK=-999 with BSCALE=0.5 BZERO=1000 (-> float32, NaN)")

    b32 = r.integers(-100000, 100000, size=(H, W)).astype(np.int32)
    b32[7, :] = -2 ** 31
    write(scaled_hdu(b32, 0.001, -5.0, blank=-2 ** 31), "blank_scaled_int32.fits")
    add("blank_scaled_int32.fits",
        "BITPIX 32, BLANK=-2147483648 with BSCALE=0.001 BZERO=-5 (-> float64, NaN)")


def make_cube_and_empty():
    r = rng(303)
    cube = np.empty((3, H, W), dtype=np.int16)
    for k in range(3):
        cube[k] = r.integers(-100, 100, size=(H, W)) + 1000 * (k + 1)
    write(fits.PrimaryHDU(cube), "cube3d.fits")
    add("cube3d.fits", "3-D image NAXIS1=64 NAXIS2=48 NAXIS3=3, int16, plane k offset 1000*(k+1)")

    h = fits.PrimaryHDU()
    h.header["OBJECT"] = ("nothing", "primary header without data")
    h.header["COMMENT"] = "NAXIS = 0: no data array"
    write(h, "naxis0.fits")
    add("naxis0.fits", "primary HDU with NAXIS=0 and nothing else")


def source_table(n, seed):
    r = rng(seed)
    return fits.BinTableHDU.from_columns([
        fits.Column(name="ID", format="J", array=np.arange(1, n + 1, dtype=np.int32)),
        fits.Column(name="X", format="D", unit="pix", array=r.uniform(0, W, n)),
        fits.Column(name="Y", format="D", unit="pix", array=r.uniform(0, H, n)),
        fits.Column(name="FLUX", format="E", unit="adu", array=r.uniform(10, 1000, n).astype(np.float32)),
    ], name="SOURCES")


def make_mef():
    r = rng(404)
    p = fits.PrimaryHDU()
    p.header["OBJECT"] = "MEF test"
    p.header["TELESCOP"] = "diffim-sim"
    img = star_field(405).astype(np.float32)
    mask = np.zeros((H, W), dtype=np.int32)
    mask[10:12, :] = 1
    mask[:, 30] |= 4
    mask[47, 63] = 2 ** 30
    var = (img * 0 + 25.0 + r.uniform(0, 1, size=(H, W))).astype(np.float32)
    hi = fits.ImageHDU(img, name="IMAGE")
    hm = fits.ImageHDU(mask, name="MASK")
    hm.header["MP_BAD"] = (0, "bit 0: bad pixel")
    hm.header["MP_SAT"] = (2, "bit 2: saturated")
    hv = fits.ImageHDU(var, name="VARIANCE")
    write([p, hi, hm, hv, source_table(9, 406)], "mef.fits")
    add("mef.fits",
        "MEF: primary without data (NAXIS=0), IMAGE float32, MASK int32, VARIANCE float32 "
        "(EXTNAME), then BINTABLE SOURCES (J, D, D, E)")


# --------------------------------------------------------------------------- tables


def make_table():
    n = 7
    r = rng(505)
    logical = np.array([True, False, True, True, False, True, False])
    undefined_rows = [2, 6]
    cols = [
        fits.Column(name="FLAG", format="L", array=logical),
        fits.Column(name="BYTE", format="B", array=np.array([0, 1, 127, 128, 255, 2, 3], np.uint8)),
        fits.Column(name="SHORT", format="I", null=-32768, unit="count",
                    array=np.array([-32768, -1, 0, 1, 32767, 42, -32768], np.int16)),
        fits.Column(name="INT", format="J", null=-999, disp="I11",
                    array=np.array([-2 ** 31, -999, 0, 7, 2 ** 31 - 1, -999, 123456], np.int32)),
        fits.Column(name="LONG", format="K", null=-9223372036854775808,
                    array=np.array([2 ** 53 + 1, -(2 ** 53) - 1, 2 ** 63 - 1, -2 ** 63, 0,
                                    9007199254740993, 1], np.int64)),
        fits.Column(name="FLT", format="E", unit="mag", disp="F8.3",
                    array=np.array([1.5, -0.0, np.inf, -np.inf, 1e-45, 3.25, np.nan], np.float32)),
        fits.Column(name="DBL", format="D", unit="deg", disp="D25.17",
                    array=np.array([np.pi, np.nan, -1e300, 5e-324, -0.0, np.nan, 1.0])),
        fits.Column(name="NAME", format="12A",
                    array=np.array(["", "a", "hello world", "  lead", "trail   ", "O'Hara",
                                    "exactly12chr"])),
        # raw values; TSCAL=0.5 / TZERO=10 are inserted afterwards (astropy 5.2 + numpy 1.24
        # cannot write a scaled integer column: _scale_back casting error)
        fits.Column(name="SCALED", format="I", unit="adu",
                    array=np.array([0, 1, -20, -12767, 32767, -1, 2], np.int16)),
        fits.Column(name="U16", format="I", bzero=32768,
                    array=np.array([0, 1, 32767, 32768, 65535, 40000, 12], np.uint16)),
        fits.Column(name="U32", format="J", bzero=2147483648,
                    array=np.array([0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 3000000000, 5], np.uint32)),
        fits.Column(name="U64", format="K", bzero=9223372036854775808,
                    array=np.array([0, 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 53 + 1, 5], np.uint64)),
        fits.Column(name="VEC", format="3E", unit="pix",
                    array=np.array([[1, 2, 3], [np.nan, 0, -1], [4, 5, 6], [7, 8, 9],
                                    [0.5, 0.25, 0.125], [-1, -2, -3], [1e10, -1e-10, 0]], np.float32)),
        fits.Column(name="VLA", format="PE()",
                    array=[np.arange(k, dtype=np.float32) * 0.5 for k in range(n - 1)] +
                    [np.array([np.nan, 1.0], np.float32)]),
    ]
    del r
    h = fits.BinTableHDU.from_columns(cols, name="TYPES")
    write([fits.PrimaryHDU(), h], "table_types.fits")
    # patch the logical column: 0x00 (undefined) in two rows -- astropy cannot write that
    with fits.open(path("table_types.fits")) as f:
        hdr_len = len(f[1].header.tostring())
        first = len(f[0].header.tostring())
        rowlen = f[1].header["NAXIS1"]
    offset = first + hdr_len  # primary has no data
    with open(path("table_types.fits"), "r+b") as fh:
        for row in undefined_rows:
            fh.seek(offset + row * rowlen + 0)  # FLAG is the first field
            assert fh.read(1) in (b"T", b"F")
            fh.seek(offset + row * rowlen + 0)
            fh.write(b"\0")
    insert_cards("table_types.fits", 1, "TFORM9", [
        kv("TSCAL9", "0.5", "SCALED = 0.5 * raw + 10"), kv("TZERO9", "10.0")])
    with fits.open(path("table_types.fits")) as f:
        got = f[1].data["SCALED"]
        assert got.dtype == np.float64 and got[1] == 10.5 and got[4] == 16393.5, got
    add("table_types.fits",
        "BINTABLE columns: L (rows 2 and 6 undefined = 0x00), B, I/J/K with TNULL, K beyond 2^53, "
        "E (inf, -0, denormal, NaN), D (NaN), 12A (empty, leading/trailing spaces, quote), "
        "I with TSCAL=0.5/TZERO=10, unsigned I/J/K via TZERO (uint16/uint32/uint64), 3E repeat, "
        "PE() variable-length, TUNIT, TDISP", maker="patched")

    # second table: X bits, complex, TDIM, string array, Q descriptors, plus an ASCII table
    bits = np.array([[(i + j) % 3 == 0 for j in range(12)] for i in range(4)])
    cols2 = [
        fits.Column(name="BITS", format="12X", array=bits),
        fits.Column(name="CPLX", format="C", array=np.array([1 + 2j, -0.5j, np.nan + 1j, 3], np.complex64)),
        fits.Column(name="DCPLX", format="M", array=np.array([1e300 - 1j, 0, complex(-0.0, 0.0), 2j], np.complex128)),
        fits.Column(name="MAT", format="6D", dim="(3,2)",
                    array=np.arange(24, dtype=np.float64).reshape(4, 2, 3)),
        fits.Column(name="STRS", format="12A", dim="(4,3)",
                    array=np.array([["ab", "cd", ""], ["1234", "x", "y"], ["", "", ""],
                                    ["a b", " c", "d "]])),
        fits.Column(name="QVLA", format="QD()",
                    array=[np.array([1.0, 2.0]), np.array([], np.float64), np.array([np.nan]),
                           np.arange(5, dtype=np.float64)]),
        fits.Column(name="PSTR", format="PA()", array=["", "short", "a longer string", "x"]),
    ]
    h2 = fits.BinTableHDU.from_columns(cols2, name="EXTRA")
    ascii_cols = [
        fits.Column(name="AI", format="I6", array=np.array([1, -20, 300, 0])),
        fits.Column(name="AF", format="F10.3", array=np.array([1.5, -2.25, 1000.125, 0.0])),
        fits.Column(name="AE", format="E12.5", array=np.array([1e-5, -3.5e10, 0.0, 2.0])),
        fits.Column(name="AD", format="D20.12", array=np.array([np.pi, -np.e, 1e100, 0.0])),
        fits.Column(name="AS", format="A8", array=np.array(["abc", "", "12345678", " x"])),
    ]
    h3 = fits.TableHDU.from_columns(ascii_cols, name="ASCII")
    write([fits.PrimaryHDU(), h2, h3], "table_extra.fits")
    add("table_extra.fits",
        "BINTABLE with 12X bits, C/M complex (NaN, -0), 6D with TDIM=(3,2), 12A with TDIM=(4,3), "
        "QD() 64-bit-descriptor varlen, PA() varlen strings; then an ASCII TABLE (I6 F10.3 E12.5 "
        "D20.12 A8)", optional=True)


# --------------------------------------------------------------------------- headers


def make_headers():
    h = fits.PrimaryHDU(np.arange(12, dtype=np.int16).reshape(3, 4))
    hd = h.header
    hd["LONGSTRN"] = ("OGIP 1.0", "CONTINUE long-string convention is used")
    hd["LONGSTR"] = ("This long string value is longer than one card can hold, so astropy "
                     "writes it with the CONTINUE long-string convention over several cards. "
                     "It ends here.", "a long string")
    hd["LONGQ"] = "It's quoted " * 8  # quotes inside a long string
    hd["HIERARCH ESO DET CHIP NAME"] = ("CCD-1", "hierarch string")
    hd["HIERARCH ESO TEL AIRM START"] = 1.234
    hd["HIERARCH THIS KEYWORD IS LONG"] = 42
    hd["BIGINT"] = (2 ** 53 + 1, "2^53+1")
    hd["BIGNEG"] = (-(2 ** 53) - 1, "-(2^53+1)")
    hd["INT64MAX"] = (2 ** 63 - 1, "2^63-1")
    hd["INT64MIN"] = (-2 ** 63, "-2^63")
    hd["UINT64MX"] = (2 ** 64 - 1, "2^64-1 (beyond int64)")
    hd["NEGZERO"] = (-0.0, "negative zero")
    hd["TINY"] = 5e-324
    hd["HUGE"] = 1.7976931348623157e308
    hd["PI"] = np.pi
    hd["QUOTE"] = ("O'Hara said 'hi'", "quotes are doubled in the card")
    hd["TRAILSP"] = ("value with trailing spaces   ", "trailing spaces are not significant")
    hd["LEADSP"] = ("   leading spaces", "leading spaces are significant")
    hd["EMPTY"] = ("", "empty string")
    hd["TRUE"] = True
    hd["FALSE"] = False
    hd["COMMENT"] = "A COMMENT card with 'quotes' and = signs / slashes."
    hd["HISTORY"] = "A HISTORY card."
    hd.append(("", "blank-keyword commentary text"), end=True)
    hd.append(fits.Card(), end=True)  # an entirely blank card
    hd["HISTORY"] = "H" * 90  # long commentary: astropy splits it over two cards
    hd["DATE-OBS"] = "2020-01-02T03:04:05.678"
    hd["A_B-9"] = (1, "keyword with - and _")
    write(h, "header_astropy.fits")
    add("header_astropy.fits",
        "astropy-written header: CONTINUE long strings (incl. quotes), HIERARCH, ints beyond 2^53, "
        "2^63-1, -2^63, 2^64-1, -0.0, denormal, DBL_MAX, '' escapes, trailing/leading spaces, "
        "empty string, T/F, COMMENT/HISTORY/blank-key cards, long HISTORY (astropy drops the "
        "trailing blank card it was given and truncates DBL_MAX to 1.7976931348623E+308)")

    cards = [
        kv("SIMPLE", "T", "conforms to FITS standard"),
        kv("BITPIX", "16"),
        kv("NAXIS", "2"),
        kv("NAXIS1", "3"),
        kv("NAXIS2", "2"),
        kv("DEXP", "1.5D+03", "D exponent"),
        kv("DEXPNEG", "-2.5D-300", "tiny value with D exponent"),
        kv("DEXPNOS", "1.0D5", "D exponent without sign"),
        kv("EEXP", "6.02E+23", "E exponent"),
        kv("CPLXINT", "(1, -2)", "complex integer value"),
        kv("CPLXFLT", "(1.5E0, -2.25D1)", "complex float value, D exponent"),
        kv("CPLXFIX", "(3.0, 4.0)".rjust(20)),
        kv("FREEINT", "42", "free-format integer", fixed=False),
        kv("FREEFLT", "3.25", "free-format float", fixed=False),
        kv("FREELOG", "T", "free-format logical", fixed=False),
        kv("FREESTR", "   'free string'", "string not starting in column 11", fixed=False),
        kv("INTPLUS", "+17", "explicit plus sign"),
        kv("INTNEG0", "-0", "integer minus zero"),
        kv("LEADZERO", "007", "leading zeros"),
        kv("FLTDOT", "1.", "trailing decimal point"),
        kv("FLTNOLD", ".5", "no leading digit"),
        kv("NEGZERO", "-0.0", "float negative zero"),
        kv("NEGZEROE", "-0.0E+00", "float negative zero, exponent"),
        kv("BIGINT", "9007199254740993", "2^53+1"),
        kv("INT64MAX", "9223372036854775807", "2^63-1"),
        kv("INT64MIN", "-9223372036854775808", "-2^63"),
        kv("UINT64MX", "18446744073709551615", "2^64-1"),
        kv("QUOTE", "'O''Hara isn''t here'", "doubled quotes", fixed=False),
        kv("ONLYQ", "''''", "a single quote character", fixed=False),
        kv("TRAIL", "'trailing   '", "trailing spaces", fixed=False),
        kv("LEAD", "'   leading'", "leading spaces", fixed=False),
        kv("EMPTY", "''", "empty string", fixed=False),
        kv("SPACE", "' '", "one space (equivalent to empty)", fixed=False),
        kv("SHORTSTR", "'ab'", "string shorter than 8 chars", fixed=False),
        kv("SLASHSTR", "'a/b'", "slash inside a string", fixed=False),
        kv("TRUE", "T"),
        kv("FALSE", "F"),
        card("NOSPACE =                    1/no space before the slash"),
        card("NOCOMM  =                   -5"),
        card("HIERARCH ESO DET CHIP NAME = 'CCD-1' / hierarch string"),
        card("HIERARCH ESO TEL AIRM START = 1.234 / hierarch float"),
        card("HIERARCH LONG KEYWORD INT = 42"),
        card("COMMENT   comment text with 'quotes' and = sign / slash"),
        card("HISTORY history text"),
        card("        blank-keyword commentary text"),
        card(""),
        kv("LONGSTRN", "'OGIP 1.0'", "CONTINUE long-string convention is used", fixed=False),
        card("LONGSTR = 'This is a long string value that is continued over several card&'"),
        card("CONTINUE  'images using the CONTINUE long-string convention of the FITS st&'"),
        card("CONTINUE  'andard.' / comment on the last piece"),
        card("LONGQ   = 'O''Hara and O''Brien: a long string with doubled quotes in it ,&'"),
        card("CONTINUE  'continued.'"),
        kv("DATE-OBS", "'2020-01-02T03:04:05.678'", fixed=False),
        kv("A_B-9", "1", "keyword with - and _"),
        kv("EQUINOX", "2000.0"),
    ]
    write_raw("header_raw.fits", [(cards, np.arange(6, dtype=np.int16).reshape(2, 3))])
    add("header_raw.fits",
        "hand-written cards astropy would normalise: D exponents (1.5D+03, -2.5D-300, 1.0D5), "
        "complex (1, -2) / (1.5E0, -2.25D1), free-format int/float/logical/string, +17, -0, 007, "
        "'1.', '.5', -0.0, ints beyond 2^53 up to 2^64-1, '' escapes, ' ', trailing/leading "
        "spaces, '1/comment', HIERARCH, COMMENT/HISTORY/blank-key/blank cards, "
        "CONTINUE", maker="raw")

    # undefined values: legal FITS (4.0 sec. 4.1.2.3) but fitsverify warns "has a null value"
    und = [kv("SIMPLE", "T"), kv("BITPIX", "8"), kv("NAXIS", "0"),
           card("UNDEF   =                      / undefined value with a comment"),
           card("UNDEF2  ="),
           kv("HIERARCH", "'x'", "not a HIERARCH card: plain keyword HIERARCH with = in col 9",
              fixed=False),
           kv("AFTER", "1")]
    write_raw("header_undefined.fits", [(und, None)])
    add("header_undefined.fits",
        "undefined values (UNDEF = / comment, UNDEF2 = nothing); legal FITS, but fitsverify "
        "warns 'has a null value' (hence nonstandard=true); NAXIS=0 hand-written primary",
        maker="raw", nonstandard=True)

    # deliberately non-standard header (fitsverify must complain; readers should cope)
    bad = [
        kv("SIMPLE", "T"),
        kv("BITPIX", "-32"),
        kv("NAXIS", "2"),
        kv("NAXIS1", "4"),
        kv("NAXIS2", "2"),
        card("lowkey  =                    1 / lower-case keyword"),
        kv("LOWEXP", "1.5e3", "lower-case exponent"),
        kv("LOWDEXP", "2.5d2", "lower-case D exponent"),
        card("NOEQUALS  this card has no value indicator"),
        kv("NOCLOSE", "'unterminated", "string without closing quote", fixed=False),
        kv("GOODAFTR", "7", "a good card after the bad ones"),
    ]
    write_raw("header_nonstandard.fits", [(bad, np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4))])
    add("header_nonstandard.fits",
        "deliberately non-standard cards: lower-case keyword, lower-case e/d exponents, keyword "
        "without '= ', unterminated string; followed by a good card", maker="raw",
        nonstandard=True)

    # float data with non-canonical NaN bit patterns, written byte by byte
    f32 = np.array([[1.0, np.nan, -0.0, 2.0], [np.inf, 0.0, -np.inf, 3.0]], np.float32)
    b = f32.view(np.uint32)
    b[0, 1] = 0xFFC00000   # negative quiet NaN
    b[1, 1] = 0x7F800001   # signalling NaN
    b[0, 3] = 0xFFFFFFFF   # all-ones NaN
    f64 = np.array([[np.nan, 1.0, np.nan], [-0.0, np.nan, 2.0]], np.float64)
    b64 = f64.view(np.uint64)
    b64[0, 0] = 0xFFF8000000000000
    b64[1, 1] = 0x7FF0000000000001
    write_raw("nan_payloads.fits", [
        ([kv("SIMPLE", "T"), kv("BITPIX", "-32"), kv("NAXIS", "2"), kv("NAXIS1", "4"),
          kv("NAXIS2", "2"), kv("EXTEND", "T")], f32),
        ([kv("XTENSION", "'IMAGE   '", fixed=False), kv("BITPIX", "-64"), kv("NAXIS", "2"),
          kv("NAXIS1", "3"), kv("NAXIS2", "2"), kv("PCOUNT", "0"), kv("GCOUNT", "1"),
          kv("EXTNAME", "'F64     '", fixed=False)], f64),
    ])
    add("nan_payloads.fits",
        "float32 and float64 images with non-canonical NaNs (negative, signalling, all-ones "
        "payloads) that must all count as NaN", maker="raw")


# --------------------------------------------------------------------------- compression


def comp(data, name, ctype, exercises, tile=None, q=16.0, method=-1, seed=1, lossy=False,
         optional=False, header=None, funpack_ok=True):
    kw = dict(compression_type=ctype, quantize_level=q, quantize_method=method,
              dither_seed=seed)
    if tile is not None:
        kw["tile_size"] = list(tile)  # astropy 5.2: FITS order (ZTILE1, ZTILE2)
    c = fits.CompImageHDU(data, header=header, **kw)
    write([fits.PrimaryHDU(), c], name)
    add(name, exercises, lossy=lossy, optional=optional, compressed=True, funpack_ok=funpack_ok)


def make_compressed():
    r = rng(606)
    i16 = (star_field(607) * 10).astype(np.int16)
    i32 = (star_field(608) * 1000).astype(np.int32) - 50000
    comp(i16, "c_rice_i16.fits", "RICE_1", "astropy RICE_1 int16, row tiles (64x1)")
    comp(i32, "c_gzip1_i32.fits", "GZIP_1", "astropy GZIP_1 int32, row tiles")
    comp(i16, "c_gzip2_i16.fits", "GZIP_2", "astropy GZIP_2 (byte-shuffled) int16, row tiles")
    comp(i32, "c_rice_i32_tile32x16.fits", "RICE_1", "astropy RICE_1 int32, 32x16 tiles",
         tile=(32, 16))
    comp(i32, "c_gzip2_i32_tile32x16.fits", "GZIP_2", "astropy GZIP_2 int32, 32x16 tiles",
         tile=(32, 16))
    odd = (star_field(609, shape=(45, 70)) * 10).astype(np.int16)
    comp(odd, "c_rice_i16_70x45_tile32x16.fits", "RICE_1",
         "astropy RICE_1 int16 70x45 with 32x16 tiles (partial tiles at the right and top edges)",
         tile=(32, 16))
    u16 = (star_field(610) * 300).astype(np.uint16)
    u16[0, 0] = 65535
    comp(u16, "c_rice_u16.fits", "RICE_1",
         "astropy RICE_1 of uint16 data (BZERO=32768); astropy 5.2 writes BSCALE/BZERO right "
         "after TFIELDS in the table header, which CFITSIO's funpack rejects", funpack_ok=False)
    f32 = star_field(611).astype(np.float32)
    # no NaNs in astropy-compressed floats: astropy 5.2 corrupts tiles holding NaNs (#11212);
    # NaNs in quantized images are covered by the fpack fixtures (ZBLANK)
    f32z = f32.copy()
    f32z[40, :] = 0.0
    f32z[41, 3] = 0.0
    comp(f32, "c_rice_f32_nodither.fits", "RICE_1", "astropy quantized float32, NO_DITHER, q=16",
         method=-1, lossy=True)
    comp(f32, "c_rice_f32_dither1.fits", "RICE_1",
         "astropy quantized float32, SUBTRACTIVE_DITHER_1 (ZDITHER0=42), q=16",
         method=1, seed=42, lossy=True)
    comp(f32z, "c_rice_f32_dither2.fits", "RICE_1",
         "astropy quantized float32 with a row of exact zeros, SUBTRACTIVE_DITHER_2 "
         "(ZDITHER0=42; zeros must decode to exactly 0.0)", method=2, seed=42, lossy=True)
    oddf = star_field(612, shape=(45, 70)).astype(np.float32)
    comp(oddf, "c_gzip2_f32_70x45_tile32x16_dither1.fits", "GZIP_2",
         "astropy GZIP_2 quantized float32 70x45, 32x16 tiles, SUBTRACTIVE_DITHER_1 (seed 7)",
         tile=(32, 16), method=1, seed=7, lossy=True)
    comp(oddf, "c_gzip1_f32_lossless.fits", "GZIP_1",
         "astropy GZIP_1 float32 with quantize_level=0: lossless (raw IEEE floats gzipped)", q=0.0)
    f64 = star_field(613).astype(np.float64)
    comp(f64, "c_rice_f64_dither1.fits", "RICE_1",
         "astropy quantized float64, SUBTRACTIVE_DITHER_1 (seed 99), q=8", q=8.0, method=1,
         seed=99, lossy=True)
    comp(i16, "c_hcompress_i16.fits", "HCOMPRESS_1", "astropy HCOMPRESS_1 (lossless) int16",
         tile=(64, 16), optional=True)
    plio = np.zeros((H, W), np.int16)
    plio[10:20, 5:50] = 3
    plio[30, :] = 1
    comp(plio, "c_plio_i16.fits", "PLIO_1", "astropy PLIO_1 int16 mask", optional=True)
    big = (star_field(614, shape=(800, 1000), nstars=60) * 10).astype(np.int16)
    comp(big, "c_big_rice_i16_1000x800.fits", "RICE_1",
         "astropy RICE_1 int16 1000x800, row tiles (row-band reads of a compressed image)")
    del r


def make_big():
    big = star_field(700, shape=(800, 1000), nstars=60).astype(np.float32)
    big[400, 500] = np.nan
    write(fits.PrimaryHDU(big), "big_f32_1000x800.fits")
    add("big_f32_1000x800.fits", "float32 1000x800 (3.2 MB) for row-band / streaming reads")
    noise = star_field(701).astype(np.float32)
    noise[12, 12:15] = np.nan
    noise[30, :] = 0.0
    write(fits.PrimaryHDU(noise), "noise_f32.fits")
    add("noise_f32.fits", "float32 64x48 star field with NaNs and a row of zeros (fpack source)")


# (output, source, flags, exercises, lossy, optional, astropy_matches_funpack)
FPACK = [
    ("fp_rice_i16.fits.fz", "bitpix16.fits", ["-r"], "fpack -r (RICE_1) int16", False, False, True),
    ("fp_gzip1_i32.fits.fz", "bitpix32.fits", ["-g1"], "fpack -g1 (GZIP_1) int32", False, False,
     True),
    ("fp_gzip2_u16.fits.fz", "uint16.fits", ["-g2"], "fpack -g2 (GZIP_2) uint16 (BZERO)", False,
     False, True),
    ("fp_rice_u16_tile32x16.fits.fz", "uint16.fits", ["-r", "-t", "32,16"],
     "fpack -r -t 32,16 uint16", False, False, True),
    ("fp_rice_i8.fits.fz", "int8.fits", ["-r"],
     "fpack -r of BITPIX 8 with BZERO=-128 (astropy 5.2 decodes it as float32, funpack'ed file "
     "reads as int8)", False, False, False),
    ("fp_rice_scaled_i16.fits.fz", "scaled_int16.fits", ["-r"],
     "fpack -r of scaled int16 (BSCALE/BZERO kept in the image header)", False, False, True),
    ("fp_rice_cube.fits.fz", "cube3d.fits", ["-r"], "fpack -r of a 3-D int16 cube", False, False,
     True),
    ("fp_mef.fits.fz", "mef.fits", ["-qt", "4"],
     "fpack -qt 4 of the MEF: three compressed image HDUs (float32 ones quantized, q=4, "
     "dither seed from checksum) and the BINTABLE copied", True, False, True),
    ("fp_q4_f32_dither1.fits.fz", "noise_f32.fits", ["-q123", "4"],
     "fpack -q123 4: quantized float32 with NaNs (ZBLANK keyword), SUBTRACTIVE_DITHER_1, seed 123"
     " (astropy 5.2 ignores ZBLANK: use the funpack'ed file as reference)", True, False, False),
    ("fp_q4_f32_dither2.fits.fz", "noise_f32.fits", ["-qz123", "4"],
     "fpack -qz123 4: SUBTRACTIVE_DITHER_2 (zeros kept exactly), NaNs (ZBLANK), seed 123; "
     "CFITSIO writes ZCMPTYPE='RICE_ONE' for this (astropy ignores ZBLANK)", True, False, False),
    ("fp_q4_f32_nodither_tile32x16.fits.fz", "noise_f32.fits", ["-q0", "4", "-t", "32,16"],
     "fpack -q0 4 -t 32,16: quantized float32 with NaNs, NO_DITHER, 32x16 tiles (astropy "
     "ignores ZBLANK)", True, False, False),
    ("fp_gzip2_f32_lossless.fits.fz", "noise_f32.fits", ["-g2", "-q", "0"],
     "fpack -g2 -q 0: lossless GZIP_2 of float32 with NaNs", False, False, True),
    ("fp_hcompress_i16.fits.fz", "bitpix16.fits", ["-h"], "fpack -h (HCOMPRESS_1, lossless) int16",
     False, True, True),
    ("fp_rice_big_f32.fits.fz", "big_f32_1000x800.fits", ["-qt", "4"],
     "fpack -qt 4 of the 1000x800 float32 with one NaN (dither seed from tile checksum; astropy "
     "ignores ZBLANK)", True, False, False),
]


def make_fpack():
    exe = shutil.which("fpack")
    if exe is None:
        raise SystemExit("make_fixtures.py: fpack not found (install Debian package libcfitsio-bin)")
    for out, src, flags, exercises, lossy, optional, matches in FPACK:
        if os.path.exists(path(out)):
            os.remove(path(out))
        cmd = [exe, "-C"] + flags + ["-O", path(out), path(src)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0 or not os.path.exists(path(out)):
            raise SystemExit("fpack failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
        add(out, exercises + "  [" + " ".join(["fpack", "-C"] + flags) + "]", maker="fpack",
            lossy=lossy, optional=optional, source=src, compressed=True,
            astropy_matches_funpack=matches)


def main(argv):
    global OUT
    if len(argv) != 1:
        print("usage: make_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    OUT = argv[0]
    os.makedirs(OUT, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any astropy complaint while writing is a bug here
        make_bitpix()
        make_scaled()
        make_cube_and_empty()
        make_mef()
        make_table()
        make_headers()
        make_compressed()
        make_big()
    make_fpack()
    with open(path("manifest.json"), "w") as fh:
        json.dump(MANIFEST, fh, indent=1)
        fh.write("\n")
    json.dump(MANIFEST, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
