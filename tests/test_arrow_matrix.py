"""Embeddings read straight from Arrow list columns (what the encode and EM UDFs see)."""

import numpy as np
import pyarrow as pa
import pytest

from sidlib.errors import InvalidInputError
from sidlib.spark.arrow_lists import arrow_matrix
from sidlib.spark.arrow_lists import list_column, list_series


def test_arrow_matrix_matches_rows_for_arrays_slices_and_chunks() -> None:
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    column = list_column(x)
    np.testing.assert_array_equal(arrow_matrix(column), x)
    np.testing.assert_array_equal(arrow_matrix(column.slice(3, 5)), x[3:8])  # offsets not starting at 0
    np.testing.assert_array_equal(arrow_matrix(pa.chunked_array([column.slice(0, 4), column.slice(4)])), x)
    doubles = pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64()))
    assert arrow_matrix(doubles).dtype == np.float32
    assert arrow_matrix(column.slice(0, 0)).shape == (0, 0)


@pytest.mark.parametrize("column", [
    pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32())),
    pa.array([[1.0, 2.0], None], pa.list_(pa.float32())),
])
def test_arrow_matrix_refuses_ragged_or_null_rows(column) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match="non-null and all of one length"):
        arrow_matrix(column)


def test_list_column_round_trips_integer_codes() -> None:
    codes = np.arange(12, dtype=np.int64).reshape(4, 3)
    column = list_column(codes)
    assert column.type == pa.list_(pa.int64())
    assert column.to_pylist() == codes.tolist()


def test_list_series_is_arrow_backed_and_allows_empty_rows() -> None:
    series = list_series(np.arange(6, dtype=np.int32).reshape(3, 2))
    assert series.dtype.pyarrow_dtype == pa.list_(pa.int32())
    assert series.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert list_column(np.zeros((2, 0), dtype=np.int64)).to_pylist() == [[], []]
