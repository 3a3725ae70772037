"""Checkpoint loading that never runs code from the file.

A ``.pth`` file is a pickle: a plain ``torch.load`` can call any function the file
names (a ``__reduce__`` payload). ``torch.load(weights_only=True)`` only rebuilds
tensors, containers, numbers and strings, plus the types of an explicit allow-list,
and refuses anything else before it runs.

- :func:`load_checkpoint` is how espnet2_smile reads a checkpoint: it first lists the
  globals the pickle names (without unpickling it) and refuses the file, in one line
  naming them, if any is outside :data:`SAFE_GLOBALS`; then it loads with
  ``weights_only=True``.
- :func:`weights_only_loads` extends the rule to ESPnet's own loads inside training
  (``checkpoint.pth`` on resume, model averaging, ``--init_param``), which pass
  ``weights_only=False``: it sets PyTorch's ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` for the
  duration, which overrides that argument. ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in
  the environment (for a checkpoint you trust and that needs more types) turns the
  forcing off, with a warning.

:data:`SAFE_GLOBALS` is what ESPnet's ``checkpoint.pth`` needs besides tensors: its
reporter state holds numpy scalars (numeric dtypes only) and ``datetime.timedelta``;
plus ``argparse.Namespace``, the legacy ``args`` entry of fairseq checkpoints (e.g.
AV-HuBERT's): an attribute bag, rebuilt by ``__new__`` and a ``__dict__`` update of
values that are themselves checked by the weights-only unpickler.
"""

import argparse
import contextlib
import datetime
import logging
import os
from pathlib import Path
from typing import Any, Iterator, List, Union

import numpy as np
import torch

from espnet2_smile.utils.safe_pickle import NUMERIC_DTYPE_CLASSES as _NUMERIC_DTYPE_CLASSES
from espnet2_smile.utils.safe_pickle import numpy_scalar as _numpy_scalar

FORCE_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
OPT_OUT_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
_TRUE = ("1", "y", "yes", "true")

SAFE_GLOBALS: List[Any] = [
    _numpy_scalar,
    np.dtype,
    *_NUMERIC_DTYPE_CLASSES,
    datetime.timedelta,
    argparse.Namespace,
]
"""Types a checkpoint may name besides torch's defaults."""


def _qualname(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


SAFE_GLOBAL_NAMES = frozenset(_qualname(g) for g in SAFE_GLOBALS)


class CheckpointError(RuntimeError):
    """A checkpoint that was refused or cannot be read; the message is one line."""


def check_checkpoint(path: Union[str, Path]) -> None:
    """Refuse ``path`` unless every global its pickle names is allowed.

    The pickle's opcodes are scanned, not executed.

    Raises:
        CheckpointError: unreadable file, or globals outside the allow-list (named).
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as e:  # zip/pickle decoding errors of every kind
        raise CheckpointError(
            f"checkpoint {path} is unreadable: truncated, or not in torch.save's zip format "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})"
        ) from None
    refused = sorted(set(names) - SAFE_GLOBAL_NAMES)
    if refused:
        raise CheckpointError(
            f"checkpoint {path} refused: it names {', '.join(refused)}, outside the types a "
            "weights-only load allows (unpickling it could run code)"
        )


def load_checkpoint(path: Union[str, Path], map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` after :func:`check_checkpoint`."""
    check_checkpoint(path)
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return torch.load(path, map_location=map_location, weights_only=True)


@contextlib.contextmanager
def weights_only_loads() -> Iterator[None]:
    """Within the block, every ``torch.load`` of this process (and of processes it
    starts) is weights-only, whatever ``weights_only`` its caller passes; the
    allow-list applies in this process."""
    if os.environ.get(OPT_OUT_ENV, "0").lower() in _TRUE:
        logging.warning(
            f"{OPT_OUT_ENV} is set: ESPnet's checkpoint loads may unpickle arbitrary objects "
            "(use it only for checkpoints you trust)"
        )
        yield
        return
    old = os.environ.get(FORCE_ENV)
    os.environ[FORCE_ENV] = "1"
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            yield
    finally:
        if old is None:
            os.environ.pop(FORCE_ENV, None)
        else:
            os.environ[FORCE_ENV] = old
