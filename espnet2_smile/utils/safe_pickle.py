"""Reading pickles of numpy arrays without running code from the file (no torch import).

A pickle names the functions that rebuild its objects, and a plain ``pickle.load``
calls them: a ``__reduce__`` payload runs any function. :func:`load_numpy_pickle`
unpickles with :class:`NumpyUnpickler`, whose ``find_class`` resolves only the few
numpy names that arrays and numpy scalars of numeric dtypes need and refuses every
other name *before* anything is called. Lists, tuples, dicts, numbers, strings and
``None`` need no names at all.

:data:`NUMERIC_DTYPE_CLASSES` is shared with :mod:`espnet2_smile.utils.checkpoint`
(its weights-only allow-list for torch checkpoints).
"""

import io
import pickle
from pathlib import Path
from typing import Any, Callable, Dict, Union

import numpy as np
from numpy._core import multiarray as _multiarray

# numeric numpy dtypes (bool, integers, floats, complex); no object dtype
NUMERIC_DTYPE_CLASSES = sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}, key=lambda c: c.__name__)
NUMERIC_KINDS = "biufc"
"""``dtype.kind`` of the numeric dtypes."""

numpy_scalar = _multiarray.scalar


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that names something outside the allow-list; the message is one line."""


def _numeric_dtype(*args: Any) -> np.dtype:
    """``np.dtype(*args)`` for numeric dtypes only (an object dtype would let the
    array's items be arbitrary pickled objects)."""
    dtype = np.dtype(*args)
    if dtype.kind not in NUMERIC_KINDS or dtype.hasobject:
        raise UnsafePickleError(f"pickle refused: dtype {dtype!s} is not numeric")
    return dtype


# pickles written by numpy 1.x name numpy.core.multiarray, numpy 2.x numpy._core.multiarray
_ALLOWED: Dict[str, Callable] = {
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": _numeric_dtype,
    **{f"{mod}.{name}": getattr(_multiarray, name)
       for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name in ("_reconstruct", "scalar")},
    **{f"numpy.dtypes.{cls.__name__}": cls for cls in NUMERIC_DTYPE_CLASSES},
}


class NumpyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the names numeric numpy arrays and scalars need."""

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key not in _ALLOWED:
            raise UnsafePickleError(
                f"pickle refused: it names {key}, outside the numpy-array allow-list "
                "(unpickling it could run code)"
            )
        return _ALLOWED[key]

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("pickle refused: it uses persistent ids")


def load_numpy_pickle(path_or_bytes: Union[str, Path, bytes], max_bytes: int = 256 << 20) -> Any:
    """Unpickle a file (or bytes) holding numeric numpy arrays in plain containers.

    Raises:
        UnsafePickleError: the pickle names anything else (nothing of it is run).
        pickle.UnpicklingError, EOFError, ValueError: a malformed or too large pickle.
    """
    if isinstance(path_or_bytes, bytes):
        data = path_or_bytes
    else:
        path = Path(path_or_bytes)
        if path.stat().st_size > max_bytes:
            raise ValueError(f"pickle {path.name} is larger than {max_bytes} bytes")
        data = path.read_bytes()
    return NumpyUnpickler(io.BytesIO(data)).load()
