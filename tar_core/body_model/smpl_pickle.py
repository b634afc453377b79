"""Read the official SMPL ``.pkl`` files without chumpy, and without running arbitrary code.

A pickle is a program: unpickling calls whatever classes it names. The official SMPL files name
numpy, scipy's CSC sparse matrix (the joint regressor) and chumpy's ``Ch`` (the blend shapes and
template). This unpickler resolves exactly those names, maps chumpy and scipy objects to inert
stand-ins that only hold their state, and refuses every other class with a clear error.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from tar_core.errors import BodyModelError, UnsafePickleError

__all__ = ["load_smpl_pickle"]


class _StandIn:
    """Holds the pickled state of a chumpy or scipy object; has no behaviour of its own."""

    qualname = ""

    def __init__(self, *args):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _ChumpyStandIn(_StandIn):
    pass


class _SparseStandIn(_StandIn):
    pass


_STAND_IN_TYPES: dict[tuple[str, str], type] = {}
MAX_FILE_BYTES = 2 << 30  # official SMPL pickles are 40-250 MB
MAX_DENSE_ELEMENTS = 50_000_000  # a sparse matrix made dense (SMPL's J_regressor: 24 x 6,890 = 165,360)


def _stand_in(kind: type, module: str, name: str) -> type:
    key = (module, name)
    if key not in _STAND_IN_TYPES:
        _STAND_IN_TYPES[key] = type(name, (kind,), {"qualname": f"{module}.{name}"})
    return _STAND_IN_TYPES[key]


def _checked_reconstructor(cls, base, state):
    """``copyreg._reconstructor`` limited to our stand-ins on a plain ``object`` base."""
    if not (isinstance(cls, type) and issubclass(cls, _StandIn)) or base is not object:
        raise UnsafePickleError(f"refusing to reconstruct {cls!r} on {base!r}")
    return copyreg._reconstructor(cls, base, state)


# Plain containers that chumpy's pickled state uses (e.g. the set ``_dirty_vars``).
_SAFE_BUILTINS = {"object": object, "set": set, "frozenset": frozenset}


def _latin1_encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError("refusing _codecs.encode other than str -> latin1 bytes")
    return text.encode("latin1")


_NUMPY_NAMES = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_SPARSE_MODULES = {"scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr"}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_NAMES:
            return super().find_class(module, name)
        if (module, name) in {("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")}:
            return _checked_reconstructor
        if module in ("__builtin__", "builtins") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if (module, name) == ("_codecs", "encode"):  # how Python 3 pickles bytes at protocol <= 2
            return _latin1_encode
        if module == "chumpy" or module.startswith("chumpy."):
            return _stand_in(_ChumpyStandIn, module, name)
        if module in _SPARSE_MODULES and name in ("csc_matrix", "csr_matrix"):
            return _stand_in(_SparseStandIn, module, name)
        raise UnsafePickleError(
            f"refusing to load class {module}.{name}: a SMPL model file holds only numpy, scipy "
            "sparse and chumpy arrays (a .pkl is executable; this one is not a plain SMPL model)"
        )


def _to_array(obj, key: str):
    """Turn stand-ins (recursively) into numpy arrays."""
    if isinstance(obj, _ChumpyStandIn):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "x" not in state:
            raise UnsafePickleError(
                f"key {key!r}: chumpy object {type(obj).qualname} is an expression, not a value; "
                "only plain chumpy arrays (Ch) are supported"
            )
        return np.asarray(_to_array(state["x"], key))
    if isinstance(obj, _SparseStandIn):
        state = obj.state if isinstance(obj.state, dict) else {}
        try:
            shape = tuple(state.get("_shape") or state["shape"])
            data, indices, indptr = state["data"], state["indices"], state["indptr"]
        except KeyError as exc:
            raise UnsafePickleError(f"key {key!r}: sparse matrix without {exc}") from None
        from scipy import sparse

        if len(shape) != 2 or not all(isinstance(d, (int, np.integer)) and 0 <= d for d in shape):
            raise BodyModelError(f"key {key!r}: sparse matrix with a bad shape {shape!r}")
        if shape[0] * shape[1] > MAX_DENSE_ELEMENTS:
            raise BodyModelError(f"key {key!r}: a {shape[0]} x {shape[1]} sparse matrix is larger than any body "
                                 f"model's (at most {MAX_DENSE_ELEMENTS} entries)")
        make = sparse.csc_matrix if "csc" in type(obj).qualname else sparse.csr_matrix
        try:
            return np.asarray(make((data, indices, indptr), shape=shape).todense())
        except (ValueError, TypeError, IndexError) as exc:
            raise BodyModelError(f"key {key!r}: damaged sparse matrix ({exc})") from None
    if isinstance(obj, dict):
        return {k: _to_array(v, f"{key}.{k}" if key else k) for k, v in obj.items()}
    return obj


def load_smpl_pickle(path: str | Path) -> dict:
    """Load a SMPL ``.pkl`` (Python-2 pickle with chumpy objects) as a dict of numpy arrays.

    Raises ``UnsafePickleError`` if the file names any class other than numpy's, scipy's sparse
    matrices or chumpy's (chumpy need not be installed), and ``BodyModelError`` for anything else that
    is not a readable SMPL pickle (damaged, truncated, too large, a sparse matrix declaring a size no body
    has: refused from its declared shape before anything is allocated).
    """
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise BodyModelError(f"{path}: {size / 1e9:.1f} GB, larger than any SMPL model file "
                             f"(at most {MAX_FILE_BYTES / 1e9:.1f} GB)")
    with open(path, "rb") as fh:
        try:
            raw = _RestrictedUnpickler(fh, encoding="latin1").load()
            if not isinstance(raw, dict):
                raise BodyModelError(f"{path}: a SMPL pickle holds a dict, found {type(raw).__name__}")
            return _to_array(raw, "")
        except BodyModelError as exc:
            if str(path) in str(exc):
                raise
            raise type(exc)(f"{path}: {exc}") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError, KeyError,
                IndexError, OverflowError, struct.error, UnicodeError, RecursionError, MemoryError) as exc:
            raise BodyModelError(f"{path}: not a readable SMPL pickle ({type(exc).__name__}: {exc})") from None
