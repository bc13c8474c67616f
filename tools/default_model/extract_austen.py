#!/usr/bin/env python3
"""Extracts Jane Austen's six novels from Debian's r-cran-janeaustenr package as plain text.

The package (MIT licence; the novels themselves are public domain, from Project Gutenberg) stores
each novel as an R character vector (one element per line) in an R lazy-load database
(data/Rdata.rdx + data/Rdata.rdb). This is a minimal reader of R's XDR serialization, enough for
those character vectors; no R installation needed.

usage: extract_austen.py PACKAGE_ROOT OUT_DIR
  PACKAGE_ROOT: where the .deb was unpacked (dpkg-deb -x), or / when the package is installed.
Writes OUT_DIR/<novel>.txt (UTF-8, one line per element, "\n" line ends).
"""
import bz2
import lzma
import struct
import sys
import zlib
from pathlib import Path


class RList(list):
    """An R vector; attrs holds its attributes (e.g. "names")."""

    attrs = {}


class Reader:
    def __init__(self, data):
        self.d, self.p, self.refs = data, 0, []

    def int(self):
        (v,) = struct.unpack_from(">i", self.d, self.p)
        self.p += 4
        return v

    def bytes(self, n):
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def header(self):
        assert self.bytes(2) == b"X\n", "only XDR serialization is supported"
        version = self.int()
        self.int()
        self.int()
        if version == 3:
            self.bytes(self.int())  # native encoding name

    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t in (254, 253, 242, 251, 252):  # NILVALUE, GLOBALENV, EMPTYENV, MISSINGARG, BASEENV
            return None
        if t == 255:  # REFSXP
            return self.refs[(flags >> 8) - 1]
        if t == 1:  # SYMSXP
            s = self.item()
            self.refs.append(s)
            return s
        if t == 9:  # CHARSXP
            n = self.int()
            return None if n == -1 else self.bytes(n).decode("utf-8", "replace")
        if t in (2, 6):  # LISTSXP / LANGSXP: attr, tag, car, cdr
            out = []
            while True:
                attr = self.item() if has_attr else None
                tag = self.item() if has_tag else None
                out.append((tag, self.item()))
                nxt = self.int()
                t2 = nxt & 0xFF
                if t2 == 254:
                    return out
                if t2 not in (2, 6):
                    self.p -= 4
                    out.append((None, self.item()))
                    return out
                has_attr, has_tag = nxt & (1 << 9), nxt & (1 << 10)
        if t == 16:  # STRSXP
            v = [self.item() for _ in range(self.int())]
        elif t == 19 or t == 20:  # VECSXP / EXPRSXP
            v = [self.item() for _ in range(self.int())]
        elif t == 13 or t == 10:  # INTSXP / LGLSXP
            n = self.int()
            v = list(struct.unpack_from(">%di" % n, self.d, self.p))
            self.p += 4 * n
        elif t == 14:  # REALSXP
            n = self.int()
            v = list(struct.unpack_from(">%dd" % n, self.d, self.p))
            self.p += 8 * n
        else:
            raise ValueError("unsupported R type %d" % t)
        v = RList(v)
        if has_attr:
            v.attrs = {tag: val for tag, val in self.item()}
        return v


def unserialize(data):
    r = Reader(data)
    r.header()
    return r.item()


def rdb_object(rdb, offset, length):
    blob = rdb[offset:offset + length]
    (n,) = struct.unpack(">I", blob[:4])
    kind = blob[4:5]
    if kind == b"Z":
        raw = bz2.decompress(blob[5:])
    elif kind == b"X":
        raw = lzma.decompress(blob[5:])
    elif kind == b"0":
        raw = blob[5:]
    else:
        raw = zlib.decompress(blob[4:])
    assert len(raw) == n
    return unserialize(raw)


def main():
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    data = root / "usr/lib/R/site-library/janeaustenr/data"
    import gzip
    index = unserialize(gzip.decompress((data / "Rdata.rdx").read_bytes()))
    # index: list(variables=list(name=c(offset, length)), references=..., compressed=...)
    top = dict(zip(index.attrs["names"], index))
    variables = top["variables"]
    rdb = (data / "Rdata.rdb").read_bytes()
    out.mkdir(parents=True, exist_ok=True)
    for name, (offset, length) in zip(variables.attrs["names"], variables):
        lines = rdb_object(rdb, offset, length)
        text = "\n".join("" if l is None else l for l in lines) + "\n"
        (out / (name + ".txt")).write_text(text, encoding="utf-8")
        print(name, len(lines), "lines", len(text), "chars")


if __name__ == "__main__":
    main()
