"""Rows of a 2-D numpy array as an Arrow list column, for UDF outputs: one flat values buffer and an
offsets array, no Python object per row (what ``list(matrix)`` in a pandas column would cost)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

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
