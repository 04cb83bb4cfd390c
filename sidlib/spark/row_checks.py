"""What makes a ``content_embeddings`` row unusable, as one rule in two forms: SQL expressions the
engine evaluates on every row (the reads' checks), and numpy over Arrow batches (:func:`usable_rows`,
for a UDF that checks the rows it reads). Both must agree on which rows are valid; the reasons they
give are what ``rejected_rows`` records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: The column holding a row's reject reason (``NULL``: usable) while it is checked.
REASON = "reject_reason"

#: Problems found before the size is looked at: such a row has no usable id or no vector at all.
IDENTITY_PROBLEMS = ("null item_id", "null embedding")
IDENTITY_CASES = "WHEN item_id IS NULL THEN 'null item_id' WHEN embedding IS NULL THEN 'null embedding'"
#: Rows sampled to confirm the size a deferred check expects; the full profile runs when their most
#: common size differs (they may be a few bad rows that happen to be scanned first).
SIZE_SAMPLE_ROWS = 1000


def value_problem_sql(max_abs_value: float) -> str:
    """SQL ``CASE`` of what is wrong with an embedding's values (``NULL``: nothing), in the order
    :func:`usable_rows` applies in numpy. No lambda (``exists(...)``): Sail loses a lambda's column
    binding when a filter on its result is pushed down. ``array_max`` is NaN when any element is NaN;
    ``array_compact`` drops null elements."""
    bound = float(max_abs_value)
    return ("CASE WHEN isnan(array_max(embedding)) OR isnan(array_min(embedding)) "
            "OR array_max(embedding) = double('inf') "
            "OR array_min(embedding) = double('-inf') OR size(array_compact(embedding)) != size(embedding) "
            "THEN 'non-finite value' "
            f"WHEN abs(array_max(embedding)) > double('{bound!r}') OR abs(array_min(embedding)) > double('{bound!r}') "
            "THEN 'value out of range' "
            "WHEN array_max(embedding) = 0 AND array_min(embedding) = 0 THEN 'all-zero vector' ELSE NULL END")


def profile_reason(size: int, problem: str | None, dim: int) -> str | None:
    """The reject reason of a profiled row (the SQL ``CASE`` of the reads' checks, in the same order)."""
    if problem in IDENTITY_PROBLEMS:
        return problem
    return "wrong dimension" if size != dim else problem


def usable_rows(ids: Any, column: Any, dim: int, max_abs_value: float) -> tuple[np.ndarray | None, np.ndarray]:
    """The usable rows of an Arrow ``item_id`` column and ``list<float>`` embedding column (id not null,
    embedding non-null, ``dim`` long, every value finite, non-null and within ``max_abs_value``, not all
    zero), the rule of the SQL checks (:func:`value_problem_sql`) in numpy: a boolean row mask (``None`` when every
    row is usable) and their float32 ``[kept, dim]`` matrix. A clean batch is checked for the cost of
    a few passes over its values and read in place; only a batch with bad rows is copied."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from sidlib.spark.arrow_lists import list_lengths, values_matrix

    column, lengths = list_lengths(column)
    shaped = lengths == dim
    if column.null_count:
        shaped &= column.is_valid().to_numpy(zero_copy_only=False)
    if ids.null_count:
        shaped &= ids.is_valid().to_numpy(zero_copy_only=False)
    if not shaped.all():
        column = column.filter(pa.array(shaped))
    values = column.flatten()
    if values.null_count:
        values = pc.fill_null(values, float("nan"))
    matrix = values_matrix(values, len(column), dim)
    # NaN where a row has a NaN; compared in float64, as the SQL compares the float values as doubles
    peak = np.abs(matrix).max(axis=1, initial=0.0).astype(np.float64)
    fine = (peak <= max_abs_value) & (peak > 0)  # excludes NaN, inf, out of range and all-zero rows
    if fine.all():
        return (None if shaped.all() else shaped), matrix
    keep = shaped.copy()
    keep[np.flatnonzero(shaped)[~fine]] = False
    return keep, matrix[fine]


def sampled_size(rows: "DataFrame") -> int | None:
    """The most common embedding size among a few non-null rows (``None``: there are none)."""
    import pyspark.sql.functions as F

    sizes = rows.where(F.col("embedding").isNotNull()).select(F.size("embedding").alias("n")).limit(SIZE_SAMPLE_ROWS)
    common = sizes.groupBy("n").count().orderBy(F.col("count").desc(), "n").limit(1).collect()
    return int(common[0]["n"]) if common else None


#: Reasons of the rows no read selects (:func:`unattributed_reason`).
UNATTRIBUTED = ("null signal", "null model_version")


def unattributed_reason(signal: str) -> Any:
    """Why a row cannot be read as ``signal`` at any model version: its ``signal`` (any row) or, for
    ``signal``, its ``model_version`` is null; ``NULL`` otherwise. No ``otherwise``: the column stays
    nullable like every other reason column, as rejected_rows is."""
    import pyspark.sql.functions as F

    return (F.when(F.col("signal").isNull(), F.lit(UNATTRIBUTED[0]))
            .when((F.col("signal") == signal) & F.col("model_version").isNull(), F.lit(UNATTRIBUTED[1])))


def has_duplicate_ids(rows: "DataFrame") -> bool:
    """Whether any item id repeats; two null ids count as a repeat, as they would in a group-by.

    An exact answer needs every id in memory somewhere (or spilled). A ``groupBy("item_id")`` held
    50-70 bytes per id in the embedded engine's hash tables (+480 to +730 MB at 10^7 ids; without
    ``engine.memory_pool_mb`` it does not spill, and Sail's allocator kept the pages into the encode
    that follows, where they set the job's peak). Here the id column is hash-partitioned and each
    partition sorts its ids as one numpy ``int64`` array: 10-20 bytes per id, freed when the check
    ends, and no slower (``benchmarks/RESULTS.md``, "the duplicate-id check's memory vs rows")."""
    flags = rows.select("item_id").repartition("item_id").mapInArrow(repeated_ids_in_partition, "repeated boolean")
    return any(row["repeated"] for row in flags.collect())


def repeated_ids_in_partition(batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` body of :func:`has_duplicate_ids`: one row, whether this partition's ids repeat
    (equal ids always land in one partition)."""
    import pyarrow as pa

    chunks, nulls = [], 0
    for batch in batches:
        ids = batch.column(0)
        nulls += ids.null_count
        chunks.append(ids.drop_null().to_numpy(zero_copy_only=False))
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    chunks.clear()  # the concatenated copy is all the sort needs: let the batches go first
    ids.sort()
    repeated = nulls > 1 or bool((ids[1:] == ids[:-1]).any())
    yield pa.RecordBatch.from_pydict({"repeated": [repeated]})
