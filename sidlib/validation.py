"""Checks at the library boundary: bad arrays fail here with a message naming the problem,
not deep inside torch with a shape error or silently as NaN codes."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch

from sidlib.errors import InvalidInputError


def as_float_matrix(X: Any, dim: int | None = None, *, name: str = "X") -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 ``[n, dim]`` array, or raise ``InvalidInputError``.

    Rejects: non-2-D input, a dimension other than ``dim``, zero rows, and NaN/inf values (the
    message gives how many rows are affected and the first one, so the caller can find them).
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        arr = np.ascontiguousarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} is not a numeric array: {exc}") from None
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D array [n, dim], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (0 rows)")
    if dim is not None and arr.shape[1] != dim:
        raise InvalidInputError(f"{name} has dimension {arr.shape[1]}, expected {dim}")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InvalidInputError(
            f"{name} has {bad.size} row(s) with NaN or inf values (first at row {int(bad[0])})"
        )
    return arr


def as_tensor(arr: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy(arr)``, read-only arrays included, with no copy. Embeddings arrive as
    read-only views of Arrow buffers (:func:`sidlib.spark.arrow_lists.arrow_matrix`); quantizers only
    read their inputs, so torch's warning about writing to a non-writable array cannot apply and
    copying every batch to silence it would cost the encode hot path a memcpy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        return torch.from_numpy(arr)


def as_code_matrix(codes: Any, cardinalities: Sequence[int], *, name: str = "codes") -> np.ndarray:
    """Return ``codes`` as an int64 ``[n, len(cardinalities)]`` array with every code in range."""
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().numpy()
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.shape[1] != len(cardinalities):
        raise InvalidInputError(
            f"{name} must have shape [n, {len(cardinalities)}], got {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (0 rows)")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InvalidInputError(f"{name} must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    card = np.asarray(cardinalities, dtype=np.int64)
    out_of_range = (arr < 0) | (arr >= card)
    if out_of_range.any():
        row, col = (int(i) for i in np.argwhere(out_of_range)[0])
        raise InvalidInputError(
            f"{name} out of range: {int(out_of_range.sum())} value(s), first at row {row} position "
            f"{col}: {int(arr[row, col])} not in [0, {int(card[col])})"
        )
    return np.ascontiguousarray(arr)
