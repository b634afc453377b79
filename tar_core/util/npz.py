"""Look inside an ``.npz`` before loading it: each member's shape, dtype and size from its ``.npy`` header
(stdlib only).

``np.load`` allocates what a member's header declares before reading its data, so a file of a few bytes
whose header claims 10^12 rows asks for terabytes. ``npz_headers`` reads the zip directory and the
headers alone, checks that each member's data can really be as large as its header says, and lets the
caller refuse sizes before anything is allocated. Errors are ``ValueError`` with a reason (no file name:
the caller adds it and chooses its error class).
"""

from __future__ import annotations

import ast
import math
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NpyHeader", "npz_headers"]

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 16  # numpy itself refuses headers above 10,000 bytes unless told otherwise
_SIMPLE = re.compile(r"^[<>|=]?([biufcUSVO?])(\d*)$")


@dataclass(frozen=True)
class NpyHeader:
    """One member: ``shape``, ``descr`` (numpy's type string, e.g. ``<f4``), ``kind`` (its letter: ``f``, ``i``,
    ``U`` ...; ``O`` for pickled objects), ``itemsize`` and ``nbytes`` (what loading it allocates)."""

    name: str
    shape: tuple[int, ...]
    descr: str
    kind: str
    itemsize: int
    nbytes: int
    stored: int = -1  # bytes of data the member really holds (after its header)

    def check_stored(self) -> None:
        """Raise ValueError when the header declares more (or less) data than the member holds."""
        if self.kind != "O" and self.stored != self.nbytes:
            raise ValueError(f"member {self.name!r}: its header declares shape {self.shape} ({self.nbytes} bytes "
                             f"of data) but it holds {self.stored} (damaged or truncated)")


def _itemsize(descr: str) -> tuple[str, int]:
    m = _SIMPLE.match(descr)
    if not m:
        raise ValueError(f"dtype {descr!r} is not a plain number or string type")
    kind, size = m.group(1), int(m.group(2) or (1 if m.group(1) in "b?" else 0))
    if kind == "?":
        kind, size = "b", 1
    if kind == "O":  # pickled Python objects: the caller refuses them
        size = 8
    if size <= 0:
        raise ValueError(f"dtype {descr!r} has no size")
    return kind, size * (4 if kind == "U" else 1)


def _read_header(fh, name: str) -> NpyHeader:
    magic = fh.read(8)
    if len(magic) < 8 or magic[:6] != MAGIC:
        raise ValueError(f"member {name!r} is not a .npy array")
    major = magic[6]
    if major == 1:
        raw = fh.read(2)
        length = struct.unpack("<H", raw)[0] if len(raw) == 2 else -1
    elif major in (2, 3):
        raw = fh.read(4)
        length = struct.unpack("<I", raw)[0] if len(raw) == 4 else -1
    else:
        raise ValueError(f"member {name!r}: .npy format version {major} is not supported")
    if not 0 < length <= MAX_HEADER:
        raise ValueError(f"member {name!r}: damaged .npy header")
    text = fh.read(length)
    if len(text) != length:
        raise ValueError(f"member {name!r}: truncated .npy header")
    try:
        header = ast.literal_eval(text.decode("latin1" if major < 3 else "utf8"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise ValueError(f"member {name!r}: damaged .npy header") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"member {name!r}: damaged .npy header")
    shape, descr = header["shape"], header["descr"]
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)) or len(shape) > 32:
        raise ValueError(f"member {name!r}: damaged .npy header (shape {shape!r})")
    if not isinstance(descr, str):
        raise ValueError(f"member {name!r}: dtype {descr!r} is not a plain number or string type")
    kind, itemsize = _itemsize(descr)
    return NpyHeader(name, shape, descr, kind, itemsize, math.prod(shape) * itemsize)


def npz_headers(path: str | Path, max_members: int = 256, check: bool = True) -> dict[str, NpyHeader]:
    """Every member of the ``.npz`` at ``path`` (name without ``.npy`` -> header), with ``stored``, the data
    size the zip records for it: ``check_stored`` (or ``check=True``, for every member) refuses a header that
    promises more data than the member holds (damage, not a big array); callers that want to name a too-large
    shape first check shapes, then call it. Raises ValueError (not a zip, truncated, damaged, too many
    members) and OSError (cannot read)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise ValueError(f"{len(infos)} members; at most {max_members} expected")
            out = {}
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"member {info.filename!r} is not a .npy array")
                with zf.open(info) as fh:
                    head = _read_header(fh, info.filename)
                    offset = fh.tell()
                head = NpyHeader(info.filename[:-4], head.shape, head.descr, head.kind, head.itemsize, head.nbytes,
                                 info.file_size - offset)
                if check:
                    head.check_stored()
                out[head.name] = head
            return out
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a complete .npz (zip) file ({exc})") from None
    except (EOFError, struct.error, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"damaged .npz ({exc})") from None
