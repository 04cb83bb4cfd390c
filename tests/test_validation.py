"""Library-boundary conversions: read-only input (Arrow buffers viewed in place) is used as is."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa

from sidlib.quantizers import build
from sidlib.spark.arrow_lists import arrow_matrix
from sidlib.validation import as_tensor


def read_only_embeddings(n: int = 600, dim: int = 8) -> np.ndarray:
    rows = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), dim).cast(pa.list_(pa.float32()))
    matrix = arrow_matrix(column)
    assert not matrix.flags.writeable and np.array_equal(matrix, rows)
    return matrix


def test_read_only_arrays_are_wrapped_without_copy_or_warning():
    matrix = read_only_embeddings()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = as_tensor(matrix)
    assert tensor.data_ptr() == matrix.ctypes.data


def test_quantizers_fit_and_encode_read_only_input_silently():
    matrix = read_only_embeddings()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = build("rq_kmeans", 8, levels=2, codebook_size=4, device="cpu").fit(matrix)
        assert q.encode(matrix).shape == (600, 2)


def test_usable_rows_drops_what_the_sql_checks_reject():
    from sidlib.spark.row_checks import usable_rows

    good = [0.5, 1.0, 2.0]
    column = pa.array([good, None, [1.0, 2.0], [float("nan"), 0.0, 0.0], [float("inf"), 0.0, 0.0],
                       [1.0, None, 2.0], [3.0, 2.0, 1.0], [0.0, -0.0, 0.0], [3e38, 1.0, 1.0], [-2e6, 0.0, 0.0],
                       good], pa.list_(pa.float32()))
    ids = pa.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, None], pa.int64())
    keep, matrix = usable_rows(ids, column, 3, 1e6)
    assert keep.tolist() == [True, False, False, False, False, False, True, False, False, False, False]
    assert matrix.tolist() == [good, [3.0, 2.0, 1.0]]
    clean = pa.array([good, good], pa.list_(pa.float32()))
    keep, matrix = usable_rows(pa.array([1, 2]), clean, 3, 1e6)
    assert keep is None and matrix.shape == (2, 3) and not matrix.flags.writeable  # read in place
