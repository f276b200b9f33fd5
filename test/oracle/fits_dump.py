#!/usr/bin/python3
"""fits_dump.py -- the astropy side of diffim's FITS test oracle.

Usage
-----
    /usr/bin/python3 test/oracle/fits_dump.py FILE...        # JSON list, one object per FILE
    /usr/bin/python3 test/oracle/fits_dump.py --selftest DIR # digest self-test vectors (see below)

Every file is opened with ``fits.open(path, memmap=False, output_verify='ignore')`` and described
exactly as astropy reads it.  Nothing is printed except the JSON document on stdout; astropy's
warnings are collected per file (``"warnings"``) instead of being shown.

Output schema (one object per input file, in argument order)
-------------------------------------------------------------
    { "file": str,
      "warnings": [str, ...],          # "<WarningClass>: <message>", in the order astropy raised them
      "hdus": [HDU, ...] }             # absent when the file could not be opened at all; then
    { "file": str, "warnings": [...], "error": "<ExceptionClass>: <message>" }

    HDU = { "index": int (0 = primary),
            "kind": "primary" | "image" | "bintable" | "table" | "compimage" | <astropy class name>,
            "name": str (astropy's hdu.name, i.e. EXTNAME or "PRIMARY"/"" ),
            "header": [Card, ...],       # astropy's hdu.header.cards, in order (END not included)
            "table_header": [Card, ...], # only for compimage: the underlying BINTABLE header
            "data": ImageData | TableData | null | {"error": str} }

    Card = { "key": str,     # astropy's card.keyword: upper-case; for HIERARCH cards WITHOUT the
                             # "HIERARCH " prefix (e.g. "ESO DET CHIP"); "" for blank-key cards
             "value": V, "comment": str, "raw": str }
             # raw = card.image: the 80-char card image, or for long strings the concatenated
             #       images of the card and all its CONTINUE cards (a multiple of 80 chars)
    V = {"t":"int","v":"<decimal digits, optional leading '-'>"}    # any size, kept exact
      | {"t":"float","v": number | "nan" | "inf" | "-inf"}           # -0.0 is emitted as -0.0
      | {"t":"bool","v": true|false}
      | {"t":"str","v": str}            # astropy's value: '' unescaped, trailing spaces stripped,
                                        # CONTINUE pieces joined (the '&' markers removed)
      | {"t":"complex","v":[re, im]}    # re/im as in "float"
      | {"t":"none"}                    # undefined value (KEY = with nothing after it)
      | {"t":"commentary","v": str}     # COMMENT / HISTORY / blank keyword: the card text
      | {"t":"unparsable","v": str, "error": str}   # astropy raised while parsing the value

    ImageData = { "shape": [NAXIS1, NAXIS2, ...],   # FITS order (reversed numpy shape)
                  "dtype": str,    # numpy dtype name after astropy's scaling: uint8 int8 int16
                                   # uint16 int32 uint32 int64 uint64 float32 float64
                  "count": int,    # number of elements
                  "sha256": str,   # hex digest of the canonical bytes (below)
                  "nan_count": int,
                  "min": M, "max": M }  # over finite values only; null if none.  M is a JSON
                                        # number for float dtypes, a decimal string for integers

    TableData = { "nrows": int, "columns": [Column, ...] }     # BINTABLE and ASCII TABLE alike
    Column = { "name": str,
               "format": str,     # the TFORM string as astropy reports it (e.g. "3E", "PE(5)")
               "unit": str|null, "null": int|str|null (TNULL), "disp": str|null (TDISP),
               "dtype": str,      # numpy dtype name of astropy's column after scaling (e.g.
                                  # "int16", "uint16", "float64", "bool"); strings: "U<n>"
                                  # (n = characters); varlen: dtype of the row arrays' elements
               "shape": [int,...],# numpy shape of the column without the row axis ([] = scalar,
                                  # [3] for "3E"); absent for varlen
               "count": int,      # number of elements hashed
               "sha256": str,
               "nan_count": int,  # numeric columns only
               "varlen": true,    # only for P/Q columns
               "lengths": [int,...], # varlen only: element count of every row
               "values": [ ... ] }   # the first <= 5 rows, JSON-readable, for humans only
                                     # (ints beyond +-2^53 as strings, NaN as "nan")

Canonical bytes (what "sha256" digests; test/oracle/canonical.ts computes the same)
----------------------------------------------------------------------------------
* Numeric arrays (images, numeric columns): the array in C (row-major numpy) order -- i.e. FITS
  order, NAXIS1 varying fastest; for table columns row-major over (nrows, repeat...) -- each
  element as the LITTLE-endian bytes of the dtype above (after astropy's BSCALE/BZERO, TSCAL/TZERO,
  unsigned-integer and BLANK handling).  Every NaN, whatever its sign and payload, is replaced by
  the quiet NaN 0x7fc00000 (float32) / 0x7ff8000000000000 (float64).  Infinities and -0.0 keep
  their bit patterns.  Complex elements are (re, im) float pairs, treated the same way.
* Logical columns (L) and bit columns (X, which astropy expands to booleans): one byte per
  element, 0x01 for true, 0x00 for false.  Undefined L values (a 0x00 byte in the file) are read
  by astropy as False and therefore hash as 0x00.
* Character columns (A): for every element in row-major order, the element's string as astropy
  gives it -- trailing NULs and trailing whitespace removed (numpy chararray semantics, i.e.
  Python's str.rstrip()) -- encoded as UTF-8 and followed by one '\\n' byte.  An empty string
  therefore contributes just '\\n'.
* Variable-length columns (P/Q): the canonical bytes of every row's array, concatenated in row
  order, with no separators or lengths (compare "lengths" separately).  Numeric/logical rows as
  above; character rows (PA) as ONE string element per row (the row's characters joined, then
  trailing whitespace/NULs stripped, UTF-8, '\\n'), "lengths" being the stored character counts.
* The digest of an empty array is sha256 of zero bytes.

Self-test mode
--------------
``--selftest DIR`` writes DIR/<name>.bin (raw little-endian element bytes as numpy stores them,
NaN payloads NOT canonicalised) for a set of tricky arrays and prints a JSON object
{ name: {"dtype", "count", "sha256", "nan_count", "file"} , "strings": {...}, "logical": {...} }
computed with the very functions used for dumps; test/oracle.selftest.test.ts checks that the
TypeScript helpers agree.
"""

import contextlib
import hashlib
import io
import json
import math
import os
import sys
import warnings

import numpy as np
from astropy.io import fits

MAX_VALUES = 5
SAFE_INT = 2 ** 53

# ----------------------------------------------------------------------------- canonical bytes

_QNAN32 = np.uint32(0x7FC00000)
_QNAN64 = np.uint64(0x7FF8000000000000)


def canonical_numeric_bytes(a):
    """Return (bytes, dtype_name, count, nan_count) for a numeric/bool numpy array."""
    a = np.asarray(a)
    name = a.dtype.name
    if a.dtype.kind == "b":
        return np.ascontiguousarray(a, dtype=np.uint8).tobytes(), "bool", int(a.size), 0
    if a.dtype.kind == "c":
        ftype = np.float32 if a.dtype.itemsize == 8 else np.float64
        flat = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")).reshape(-1)
        pairs = flat.view(np.dtype(ftype)).copy()
        b, _, _, nans = canonical_numeric_bytes(pairs)
        return b, name, int(a.size), nans
    le = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    if a.dtype.kind == "f":
        if a.dtype.itemsize == 4:
            bits = le.view("<u4").copy()
            qnan = _QNAN32
        elif a.dtype.itemsize == 8:
            bits = le.view("<u8").copy()
            qnan = _QNAN64
        else:
            raise TypeError("unsupported float size %d" % a.dtype.itemsize)
        isnan = np.isnan(le)
        bits[isnan] = qnan
        return bits.tobytes(), name, int(a.size), int(isnan.sum())
    if a.dtype.kind in "iu":
        return le.tobytes(), name, int(a.size), 0
    raise TypeError("not a numeric dtype: %s" % a.dtype)


def canonical_string_bytes(values):
    out = bytearray()
    for s in values:
        if isinstance(s, bytes):
            s = s.decode("ascii", errors="replace")
        out += str(s).rstrip().encode("utf-8")
        out += b"\n"
    return bytes(out)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


# ----------------------------------------------------------------------------- JSON helpers


def json_float(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def readable(x):
    """JSON-readable form of an arbitrary (numpy) value, for humans."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        x = int(x)
        return str(x) if abs(x) > SAFE_INT else x
    if isinstance(x, (float, np.floating)):
        return json_float(x)
    if isinstance(x, (complex, np.complexfloating)):
        return [json_float(x.real), json_float(x.imag)]
    if isinstance(x, bytes):
        return x.decode("ascii", errors="replace")
    if isinstance(x, str):
        return x.rstrip()
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "US":
            return [readable(v) for v in x.tolist()]
        return [readable(v) for v in x.tolist()] if x.ndim else readable(x.item())
    if isinstance(x, (list, tuple)):
        return [readable(v) for v in x]
    return str(x)


# ----------------------------------------------------------------------------- header


def card_value(card):
    key = card.keyword
    if key in ("COMMENT", "HISTORY", ""):
        return {"t": "commentary", "v": str(card.value)}
    try:
        v = card.value
    except Exception as e:  # noqa: BLE001
        raw = card.image[10:] if len(card.image) > 10 else ""
        return {"t": "unparsable", "v": raw, "error": "%s: %s" % (type(e).__name__, e)}
    if isinstance(v, fits.card.Undefined):
        return {"t": "none"}
    if isinstance(v, (bool, np.bool_)):
        return {"t": "bool", "v": bool(v)}
    if isinstance(v, (int, np.integer)):
        return {"t": "int", "v": str(int(v))}
    if isinstance(v, (float, np.floating)):
        return {"t": "float", "v": json_float(v)}
    if isinstance(v, (complex, np.complexfloating)):
        return {"t": "complex", "v": [json_float(v.real), json_float(v.imag)]}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    return {"t": "unparsable", "v": str(v), "error": "unexpected type %s" % type(v).__name__}


def dump_header(header):
    out = []
    for card in header.cards:
        entry = {"key": card.keyword, "value": card_value(card)}
        try:
            entry["comment"] = str(card.comment)
        except Exception:  # noqa: BLE001
            entry["comment"] = ""
        try:
            entry["raw"] = card.image
        except Exception as e:  # noqa: BLE001
            entry["raw"] = "<unavailable: %s>" % e
        out.append(entry)
    return out


# ----------------------------------------------------------------------------- data


def dump_image(data):
    if data is None:
        return None
    a = np.asarray(data)
    b, name, count, nans = canonical_numeric_bytes(a)
    res = {
        "shape": [int(n) for n in a.shape[::-1]],
        "dtype": name,
        "count": count,
        "sha256": sha256(b),
        "nan_count": nans,
        "min": None,
        "max": None,
    }
    if a.size:
        if a.dtype.kind == "f":
            fin = a[np.isfinite(a)]
            if fin.size:
                res["min"] = json_float(fin.min())
                res["max"] = json_float(fin.max())
        elif a.dtype.kind in "iu":
            res["min"] = str(int(a.min()))
            res["max"] = str(int(a.max()))
    return res


_VARLEN_ELEM = {"L": "bool", "X": "bool", "B": "uint8", "I": "int16", "J": "int32",
                "K": "int64", "E": "float32", "D": "float64", "C": "complex64",
                "M": "complex128", "A": "U"}


def dump_column(col, field, nrows):
    fmt = str(col.format)
    res = {
        "name": col.name,
        "format": fmt,
        "unit": col.unit if col.unit not in (None, "") else None,
        "null": (int(col.null) if isinstance(col.null, (int, np.integer)) else
                 (str(col.null) if col.null not in (None, "") else None)),
        "disp": col.disp if col.disp not in (None, "") else None,
    }
    is_varlen = fmt.lstrip("0123456789")[:1] in ("P", "Q")
    if is_varlen:
        rows = [np.asarray(field[i]) if not isinstance(field[i], str) else field[i]
                for i in range(nrows)]
        letter = fmt.lstrip("0123456789")[1:2]
        res["varlen"] = True
        lengths, chunks, nans, count = [], [], 0, 0
        dtype = None
        shown = []
        for r in rows:
            if isinstance(r, str) or (isinstance(r, np.ndarray) and r.dtype.kind in "US"):
                # astropy gives a PA row as an array of 1-char strings; join the stored chars
                # (plain ndarray view: chararray item access would turn ' ' into '')
                if isinstance(r, str):
                    s, n = r, len(r)
                else:
                    flat = np.asarray(r).view(np.ndarray).ravel().tolist()
                    s = "".join(x.decode("ascii", "replace") if isinstance(x, bytes) else str(x)
                                for x in flat)
                    n = int(np.asarray(r).size)
                lengths.append(n)
                chunks.append(canonical_string_bytes([s]))
                shown.append(s.rstrip())
                count += 1
                dtype = "U"
            else:
                b, name, n, k = canonical_numeric_bytes(r)
                shown.append(r)
                lengths.append(n)
                chunks.append(b)
                count += n
                nans += k
                dtype = dtype or name
        res["dtype"] = dtype or _VARLEN_ELEM.get(letter, "unknown")
        res["count"] = count
        res["sha256"] = sha256(b"".join(chunks))
        if res["dtype"] not in ("bool", "U"):
            res["nan_count"] = nans
        res["lengths"] = lengths
        res["values"] = [readable(r) for r in shown[:MAX_VALUES]]
        return res
    a = np.asarray(field)
    res["shape"] = [int(n) for n in a.shape[1:]]
    if a.dtype.kind in "US":
        vals = [str(x) for x in a.ravel().tolist()] if a.dtype.kind == "U" else \
            [x.decode("ascii", errors="replace") for x in a.ravel().tolist()]
        res["dtype"] = "U%d" % (a.dtype.itemsize // 4 if a.dtype.kind == "U" else a.dtype.itemsize)
        res["count"] = len(vals)
        res["sha256"] = sha256(canonical_string_bytes(vals))
    else:
        b, name, n, k = canonical_numeric_bytes(a)
        res["dtype"] = name
        res["count"] = n
        res["sha256"] = sha256(b)
        if name != "bool":
            res["nan_count"] = k
    res["values"] = [readable(a[i]) for i in range(min(nrows, MAX_VALUES))]
    return res


def dump_table(hdu):
    data = hdu.data
    if data is None:
        return {"nrows": 0, "columns": []}
    nrows = len(data)
    cols = []
    for col in hdu.columns:
        try:
            cols.append(dump_column(col, data.field(col.name), nrows))
        except Exception as e:  # noqa: BLE001
            cols.append({"name": col.name, "format": str(col.format),
                         "error": "%s: %s" % (type(e).__name__, e)})
    return {"nrows": nrows, "columns": cols}


def hdu_kind(hdu):
    # order matters: CompImageHDU is a BinTableHDU subclass, PrimaryHDU an image subclass
    if isinstance(hdu, fits.CompImageHDU):
        return "compimage"
    if isinstance(hdu, fits.GroupsHDU):
        return "GroupsHDU"
    if isinstance(hdu, fits.PrimaryHDU):
        return "primary"
    if isinstance(hdu, fits.ImageHDU):
        return "image"
    if isinstance(hdu, fits.BinTableHDU):
        return "bintable"
    if isinstance(hdu, fits.TableHDU):
        return "table"
    return type(hdu).__name__


def dump_hdu(index, hdu):
    kind = hdu_kind(hdu)
    res = {"index": index, "kind": kind}
    try:
        res["name"] = hdu.name
    except Exception:  # noqa: BLE001
        res["name"] = ""
    res["header"] = dump_header(hdu.header)
    if kind == "compimage":
        res["table_header"] = dump_header(hdu._header)
    try:
        if kind in ("primary", "image", "compimage"):
            res["data"] = dump_image(hdu.data)
        elif kind in ("bintable", "table"):
            res["data"] = dump_table(hdu)
        else:
            res["data"] = {"error": "unsupported HDU type %s" % kind}
    except Exception as e:  # noqa: BLE001
        res["data"] = {"error": "%s: %s" % (type(e).__name__, e)}
    return res


def dump_file(path):
    res = {"file": path, "warnings": []}
    sink = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sink):
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, memmap=False, output_verify="ignore")
            try:
                hdus = []
                for i, hdu in enumerate(hdul):
                    hdus.append(dump_hdu(i, hdu))
                res["hdus"] = hdus
            finally:
                hdul.close(output_verify="ignore")
        except Exception as e:  # noqa: BLE001
            res.pop("hdus", None)
            res["error"] = "%s: %s" % (type(e).__name__, e)
    for w in caught:
        res["warnings"].append("%s: %s" % (w.category.__name__, w.message))
    if sink.getvalue().strip():
        res["warnings"].append("stdout: " + sink.getvalue().strip())
    return res


# ----------------------------------------------------------------------------- self-test vectors


def selftest(outdir):
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(20240601)
    f32 = rng.normal(size=97).astype(np.float32)
    f32[[3, 10, 50]] = np.nan
    f32[4], f32[5], f32[6], f32[7] = np.inf, -np.inf, -0.0, np.float32(1e-45)
    b32 = f32.view(np.uint32)
    b32[10] = 0xFFC00000          # negative quiet NaN
    b32[50] = 0x7F800001          # signalling NaN with payload
    f64 = rng.normal(size=61)
    f64[[0, 20, 60]] = np.nan
    f64[1], f64[2] = -0.0, 5e-324
    b64 = f64.view(np.uint64)
    b64[20] = 0xFFF8000000000000
    b64[60] = 0x7FF0000000000001
    arrays = {
        "uint8": np.arange(256, dtype=np.uint8),
        "int8": np.arange(-128, 128, dtype=np.int8),
        "int16": np.array([-32768, -1, 0, 1, 32767, 12345], dtype=np.int16),
        "uint16": np.array([0, 1, 32767, 32768, 65535], dtype=np.uint16),
        "int32": np.array([-2 ** 31, -1, 0, 2 ** 31 - 1, 123456789], dtype=np.int32),
        "uint32": np.array([0, 2 ** 31, 2 ** 32 - 1, 7], dtype=np.uint32),
        "int64": np.array([-2 ** 63, -(2 ** 53) - 1, 2 ** 53 + 1, 2 ** 63 - 1, 0, -1],
                          dtype=np.int64),
        "uint64": np.array([0, 2 ** 53 + 1, 2 ** 63, 2 ** 64 - 1, 9223372036854775809],
                           dtype=np.uint64),
        "float32": f32,
        "float64": f64,
        "empty_float32": np.zeros(0, dtype=np.float32),
    }
    out = {}
    for name, a in arrays.items():
        fn = os.path.join(outdir, name + ".bin")
        with open(fn, "wb") as fh:
            fh.write(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
        b, dt, n, k = canonical_numeric_bytes(a)
        out[name] = {"dtype": dt, "count": n, "sha256": sha256(b), "nan_count": k,
                     "file": fn}
    strings = ["", "abc", "trailing   ", "  lead", "O'Hara", "x" * 68, "caf\u00e9"]
    out["strings"] = {"values": strings,
                      "sha256": sha256(canonical_string_bytes(strings))}
    logical = [True, False, None, True]
    out["logical"] = {"values": logical,
                      "sha256": sha256(canonical_numeric_bytes(
                          np.array([bool(v) for v in logical]))[0])}
    # a varlen column: rows concatenated
    rows = [np.array([1.5, np.nan], dtype=np.float32), np.zeros(0, np.float32),
            np.array([-0.0], dtype=np.float32)]
    out["varlen_float32"] = {"rows": [[readable(v) for v in r.tolist()] for r in rows],
                             "sha256": sha256(b"".join(canonical_numeric_bytes(r)[0]
                                                       for r in rows))}
    return out


def main(argv):
    if len(argv) >= 1 and argv[0] == "--selftest":
        if len(argv) != 2:
            print("usage: fits_dump.py --selftest DIR", file=sys.stderr)
            return 2
        json.dump(selftest(argv[1]), sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    results = [dump_file(p) for p in argv]
    json.dump(results, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
