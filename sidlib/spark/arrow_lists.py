"""Arrow list columns and 2-D numpy arrays, both ways, for UDFs: one flat values buffer and an offsets
array, no Python object per row (what ``list(matrix)`` in a pandas column, or ``np.stack`` of a
column of arrays, would cost)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sidlib.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def list_column(matrix: np.ndarray) -> "pa.ListArray":
    """Rows of a 2-D array as an Arrow list column sharing one flat values buffer."""
    import pyarrow as pa

    n, width = matrix.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * np.int32(width))  # width 0: n empty lists
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(matrix).reshape(-1)))


def list_series(matrix: np.ndarray) -> "pd.Series":
    """The same column as a pandas Series backed by Arrow (``ArrowDtype``), for ``applyInPandas``: the
    engine takes its Arrow array as it is instead of converting one numpy array per row."""
    import pandas as pd

    return pd.Series(pd.arrays.ArrowExtensionArray(list_column(matrix)))


def to_matrix(values: Any) -> np.ndarray:
    """A pandas/Arrow column of equal-length float arrays as one float32 ``[n, dim]`` matrix."""
    if len(values) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(values.to_numpy() if hasattr(values, "to_numpy") else values).astype(np.float32, copy=False)


def arrow_matrix(column: Any) -> np.ndarray:
    """An Arrow ``list<float>`` column (array or chunked) of equal-length rows as one float32 ``[n, dim]``
    matrix, straight from the values buffer: no Python object per row (what ``mapInArrow`` UDFs use).
    When the values are already float32 the matrix is a read-only view of that buffer, not a copy."""
    column, lengths = list_lengths(column)
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if column.null_count or (lengths != lengths[0]).any():
        raise InvalidInputError("embeddings must be non-null and all of one length within a batch")
    return values_matrix(column.flatten(), len(column), int(lengths[0]))


def list_lengths(column: Any) -> tuple[Any, np.ndarray]:
    """An Arrow list column (array or chunked) as one array, and each row's length from its offsets."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column, np.diff(column.offsets.to_numpy())


def values_matrix(values: Any, rows: int, dim: int) -> np.ndarray:
    """Flat Arrow values as a float32 ``[rows, dim]`` matrix: a read-only view of their buffer when they
    are float32 already, a converted copy otherwise."""
    return values.to_numpy(zero_copy_only=False).reshape(rows, dim).astype(np.float32, copy=False)


def code_matrix(column: Any, n_codes: int) -> np.ndarray:
    """An Arrow ``list<int>`` column of ``n_codes``-long rows (no nulls) as an int64 ``[n, n_codes]`` matrix."""
    column, lengths = list_lengths(column)
    if column.null_count or (lengths != n_codes).any() or column.flatten().null_count:
        raise InvalidInputError(f"codes must be non-null lists of {n_codes} within a batch")
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(len(column), n_codes)
