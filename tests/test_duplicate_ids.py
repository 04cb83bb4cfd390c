"""The exact duplicate-id check that decides whether rows need the dedup window (sorted per partition)."""

import numpy as np
import pyarrow as pa
import pytest

from sidlib.spark.row_checks import has_duplicate_ids, repeated_ids_in_partition


@pytest.mark.parametrize("ids, repeated", [
    ([], False),
    ([7], False),
    ([3, 1, 2], False),
    ([None, 1, 2], False),  # one null id is just an id
    ([None, 1, None], True),  # two null ids repeat, as they do in a group-by
    ([5, 9, 5], True),
])
def test_repeats_found_in_one_partition_across_batches(ids, repeated) -> None:  # type: ignore[no-untyped-def]
    batches = [pa.RecordBatch.from_pydict({"item_id": pa.array([i], pa.int64())}) for i in ids]
    (out,) = list(repeated_ids_in_partition(iter(batches)))
    assert out.to_pydict() == {"repeated": [repeated]}


def test_duplicate_ids_found_among_many_on_the_engine(spark) -> None:  # type: ignore[no-untyped-def]
    ids = np.random.default_rng(0).permutation(50_000)
    unique = spark.createDataFrame([(int(i),) for i in ids], "item_id bigint")  # type: ignore[attr-defined]
    assert not has_duplicate_ids(unique)
    repeated = unique.union(spark.createDataFrame([(int(ids[12_345]),)], "item_id bigint"))  # type: ignore[attr-defined]
    assert has_duplicate_ids(repeated)
    assert not has_duplicate_ids(unique.where("item_id < 0"))  # no rows at all
