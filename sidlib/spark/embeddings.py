"""Read one signal's embeddings from ``content_embeddings``, validated, for fitting and encoding.

Rows that cannot be used are never dropped silently: each gets a reason (``null item_id``,
``null embedding``, ``wrong dimension``, ``non-finite value``, ``value out of range``, ``all-zero
vector``, ``duplicate``, and ``null signal`` / ``null model_version`` for rows no read selects), is
counted in the job summary and, by the ``data_quality.on_bad_rows`` policy, either quarantined to
``rejected_rows`` (once: a rerun over the same rows adds none) or fails the job.
Validation is SQL expressions on the engine, so bad rows are found without collecting anything; a
consumer that reads every embedding anyway (the full encode) may instead check rows as it reads them
(:func:`usable_rows`, the same rule in numpy) and have the dropped ones classified afterwards.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from sidlib import schemas
from sidlib.config import DataQualityConfig
from sidlib.errors import InvalidInputError, TableError
from sidlib.spark.tables import Tables, sql_literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

REASON = "reject_reason"


@dataclass
class SignalData:
    """Valid rows (``item_id``, ``embedding``) of one signal and model version, plus what was rejected."""

    frame: "DataFrame"
    signal: str
    model_version: str
    dim: int
    source_version: int | None
    rows: int
    rejected: dict[str, int] = field(default_factory=dict)
    #: ``False``: ``frame`` holds every row of the signal, unchecked, ``rows`` counts them all and the
    #: consumer drops bad rows itself, then calls :func:`settle_deferred` (see ``defer_to_dim``).
    checked: bool = True


def latest_model_version(df: "DataFrame", signal: str) -> str:
    """The model version most recently logged for ``signal`` (what a refresh should train on)."""
    import pyspark.sql.functions as F

    row = (df.where(F.col("signal") == signal).groupBy("model_version").agg(F.max("logged_at").alias("at"))
           .orderBy(F.col("at").desc(), F.col("model_version").desc()).limit(1).collect())
    if not row:
        signals = sorted(r["signal"] for r in df.select("signal").distinct().collect())
        raise TableError(f"signal {signal!r} not in content_embeddings (found: {', '.join(signals) or 'no rows'})")
    return str(row[0]["model_version"])


def read_signal(
    tables: Tables,
    signal: str,
    *,
    model_version: str | None = None,
    dim: int | None = None,
    quality: DataQualityConfig,
    job: str,
    source_version: int | None = None,
    defer_to_dim: int | None = None,
) -> SignalData:
    """Valid embeddings of ``signal`` at ``model_version`` (default: the newest one), with bad rows
    handled by ``quality``. ``dim`` defaults to the most common embedding size of the signal.

    ``defer_to_dim`` is for a consumer that reads every row once anyway and drops rows that are not
    usable ``defer_to_dim``-long embeddings itself (the encode UDF, :func:`usable_rows`): checking first
    costs a scan that decodes every embedding, about a third of the encode job. When bad rows would be
    quarantined, no item id repeats and a sample of rows has that size, the rows come back unchecked
    (``checked=False``) and :func:`settle_deferred`, given how many rows the consumer kept, classifies
    and quarantines the bad ones only if there were any. Otherwise (``on_bad_rows: fail``, repeated ids,
    or a sample of another size, which may be the table's real size or a few bad rows that happen to
    come first) the full check runs and finds the most common size."""
    import pyspark.sql.functions as F
    from pyspark.sql import Window

    df, version = tables.read("content_embeddings", version=source_version)
    model_version = model_version or latest_model_version(df, signal)
    selected, unattributed = _row_counts(df, signal, model_version)
    if unattributed:
        _quarantine_unattributed(tables, df, signal, unattributed, quality, job, version)
    rows = df.where((F.col("signal") == signal) & (F.col("model_version") == model_version))
    duplicated = has_duplicate_ids(rows)
    if defer_to_dim is not None and quality.on_bad_rows == "quarantine" and not duplicated:
        sampled = _sampled_size(rows)
        if selected and sampled == defer_to_dim:
            log.info("signal %s@%s: %d rows (dim %d) from content_embeddings v%s, checked while encoding",
                     signal, model_version, selected, defer_to_dim, version)
            return SignalData(rows.select("item_id", "embedding"), signal, model_version, int(defer_to_dim), version,
                              selected, unattributed, checked=False)
        log.info("signal %s@%s: sampled rows have dim %s, not %d: checking every row first", signal,
                 model_version, sampled, defer_to_dim)
    values = value_problem_sql(quality.max_abs_value)
    # One scan profiles every row (size and the size-independent problems): it gives the dimension and,
    # unless ids repeat, every count; the encode or fit pass is then the only other read of the embeddings.
    profile = [(-1 if r["n"] is None else int(r["n"]), r["problem"], int(r["count"])) for r in rows.groupBy(
        F.size("embedding").alias("n"), F.expr(f"CASE {_IDENTITY_CASES} ELSE {values} END").alias("problem"),
    ).count().collect()]
    if dim is None:
        sizes: Counter[int] = Counter()
        for size, problem, count in profile:
            if problem not in IDENTITY_PROBLEMS:
                sizes[size] += count
        if not sizes:
            raise TableError(f"no usable rows for signal {signal!r} at model_version {model_version!r}")
        dim = min(sizes, key=lambda size: (-sizes[size], size))
    row_problem = F.expr(f"CASE {_IDENTITY_CASES} WHEN size(embedding) != {int(dim)} THEN 'wrong dimension' "
                         f"ELSE {values} END")
    checked = rows.withColumn(REASON, row_problem)
    if duplicated:
        # Among an item's rows the usable, most recently logged one wins; the others are duplicates, so a
        # broken newer row never evicts a good older one. Ties break on a hash of the content, not on
        # row order. Only tables with repeated ids pay for this window (a shuffle of whole rows).
        winner_first = Window.partitionBy("item_id").orderBy(
            F.col(REASON).isNull().desc(), F.col("logged_at").desc(), F.xxhash64("embedding"))
        checked = checked.withColumn(REASON, F.when(F.col(REASON).isNull() & (F.row_number().over(winner_first) > 1),
                                                    F.lit("duplicate")).otherwise(F.col(REASON)))
        rejected: dict[str | None, int] = {r[REASON]: int(r["count"]) for r in checked.groupBy(REASON).count().collect()}
    else:
        rejected = Counter()
        for size, problem, count in profile:
            rejected[_reason(size, problem, int(dim))] += count
    n = rejected.pop(None, 0)
    rejected = {reason: count for reason, count in rejected.items() if count}
    if rejected:
        _handle_rejects(tables, checked.where(F.col(REASON).isNotNull()), rejected, quality, job, version, signal)
    # the read is pinned to one table version, so when the profile found nothing to reject the rows need
    # no per-row check again in the encode or fit pass
    valid = (checked.where(F.col(REASON).isNull()) if rejected else rows).select("item_id", "embedding")
    if n == 0:
        raise TableError(f"no valid rows for signal {signal!r} at model_version {model_version!r}")
    rejected = {**unattributed, **rejected}
    log.info("signal %s@%s: %d valid rows (dim %d) from content_embeddings v%s, rejected %s",
             signal, model_version, n, dim, version, rejected or "none")
    return SignalData(valid, signal, model_version, int(dim), version, n, rejected)


#: Problems found before the size is looked at: such a row has no usable id or no vector at all.
IDENTITY_PROBLEMS = ("null item_id", "null embedding")
_IDENTITY_CASES = "WHEN item_id IS NULL THEN 'null item_id' WHEN embedding IS NULL THEN 'null embedding'"
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


def _sampled_size(rows: "DataFrame") -> int | None:
    """The most common embedding size among a few non-null rows (``None``: there are none)."""
    import pyspark.sql.functions as F

    sizes = rows.where(F.col("embedding").isNotNull()).select(F.size("embedding").alias("n")).limit(SIZE_SAMPLE_ROWS)
    common = sizes.groupBy("n").count().orderBy(F.col("count").desc(), "n").limit(1).collect()
    return int(common[0]["n"]) if common else None


#: Reasons of the rows no read selects (:func:`_unattributed_reason`).
UNATTRIBUTED = ("null signal", "null model_version")


def _unattributed_reason(signal: str) -> Any:
    """Why a row cannot be read as ``signal`` at any model version: its ``signal`` (any row) or, for
    ``signal``, its ``model_version`` is null; ``NULL`` otherwise. No ``otherwise``: the column stays
    nullable like every other reason column, as rejected_rows is."""
    import pyspark.sql.functions as F

    return (F.when(F.col("signal").isNull(), F.lit(UNATTRIBUTED[0]))
            .when((F.col("signal") == signal) & F.col("model_version").isNull(), F.lit(UNATTRIBUTED[1])))


def _row_counts(df: "DataFrame", signal: str, model_version: str) -> tuple[int, dict[str, int]]:
    """One pass over the scalar columns: the rows of ``signal`` at ``model_version``, and the
    unattributed rows by reason (they would otherwise vanish in the filter)."""
    import pyspark.sql.functions as F

    reason = _unattributed_reason(signal)
    row = df.agg(F.count(F.when((F.col("signal") == signal) & (F.col("model_version") == model_version), 1))
                 .alias("selected"), *[F.count(F.when(reason == r, 1)).alias(r) for r in UNATTRIBUTED]).collect()[0]
    return int(row["selected"]), {r: int(row[r]) for r in UNATTRIBUTED if row[r]}


def _quarantine_unattributed(tables: Tables, df: "DataFrame", signal: str, counts: dict[str, int],
                             quality: DataQualityConfig, job: str, version: int | None) -> None:
    """Handle the rows :func:`_row_counts` found unattributed like other bad rows."""
    import pyspark.sql.functions as F

    orphans = df.withColumn(REASON, _unattributed_reason(signal)).where(F.col(REASON).isNotNull())
    _handle_rejects(tables, orphans, counts, quality, job, version, signal)


def settle_deferred(tables: Tables, data: SignalData, kept: int, *, quality: DataQualityConfig, job: str) -> SignalData:
    """Account for the rows a consumer of unchecked ``data`` dropped: none (``kept == data.rows``)
    costs nothing; otherwise the signal is read again at the same table version with the checks on,
    which quarantines the bad rows and counts them by reason. The consumer's rule and the SQL checks
    must agree on which rows are valid; if they do not, this raises rather than lose rows silently."""
    if data.checked:
        return data
    if kept == data.rows:
        return replace(data, checked=True)
    checked = read_signal(tables, data.signal, model_version=data.model_version, dim=data.dim, quality=quality,
                          job=job, source_version=data.source_version)
    if checked.rejected.get("wrong dimension", 0) > checked.rows:
        raise TableError(f"most rows of signal {data.signal!r} are not {data.dim} long ({checked.rejected}); the "
                         f"{checked.rows} that are were written, but the artifact does not fit this data: refit")
    if checked.rows != kept:
        raise TableError(f"{job} kept {kept} rows of signal {data.signal!r} but {checked.rows} are valid "
                         f"(rejected: {checked.rejected})")
    return checked


def usable_rows(ids: Any, column: Any, dim: int, max_abs_value: float) -> tuple[np.ndarray | None, np.ndarray]:
    """The usable rows of an Arrow ``item_id`` column and ``list<float>`` embedding column (id not null,
    embedding non-null, ``dim`` long, every value finite, non-null and within ``max_abs_value``, not all
    zero), the rule of :func:`read_signal`'s checks in numpy: a boolean row mask (``None`` when every
    row is usable) and their float32 ``[kept, dim]`` matrix. A clean batch is checked for the cost of
    a few passes over its values and read in place; only a batch with bad rows is copied."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column, lengths = _list_lengths(column)
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
    matrix = _values_matrix(values, len(column), dim)
    # NaN where a row has a NaN; compared in float64, as the SQL compares the float values as doubles
    peak = np.abs(matrix).max(axis=1, initial=0.0).astype(np.float64)
    fine = (peak <= max_abs_value) & (peak > 0)  # excludes NaN, inf, out of range and all-zero rows
    if fine.all():
        return (None if shaped.all() else shaped), matrix
    keep = shaped.copy()
    keep[np.flatnonzero(shaped)[~fine]] = False
    return keep, matrix[fine]


def _reason(size: int, problem: str | None, dim: int) -> str | None:
    """The reject reason of a profiled row (the SQL ``CASE`` of :func:`read_signal`, in the same order)."""
    if problem in IDENTITY_PROBLEMS:
        return problem
    return "wrong dimension" if size != dim else problem


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


def _handle_rejects(tables: Tables, bad: "DataFrame", counts: dict[str, int], quality: DataQualityConfig,
                    job: str, version: int | None, signal: str) -> None:
    import pyspark.sql.functions as F

    summary = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    if quality.on_bad_rows == "fail":
        raise InvalidInputError(f"content_embeddings has bad rows for signal {signal!r}: {summary} "
                                f"(set data_quality.on_bad_rows=quarantine to set them aside)")
    out = bad.select(
        F.col("item_id").cast("bigint"), F.col("signal"), F.col("model_version"), F.col(REASON).alias("reason"),
        F.lit(job).alias("job"), F.lit(version).cast("bigint").alias("source_version"),
    )
    if tables.exists("rejected_rows"):  # a rerun over the same table version records nothing twice
        seen = tables.read_unpinned("rejected_rows")
        out = out.join(seen, [out[c].eqNullSafe(seen[c]) for c in schemas.REJECTED_ROWS], "left_anti")
    tables.write(out, "rejected_rows", mode="append")
    log.warning("quarantined %s rows of %s to rejected_rows: %s", sum(counts.values()), signal, summary)


def hash_fraction(column: str, salt: str) -> str:
    """SQL expression in [0, 1) from a hash of ``column`` and ``salt``: a deterministic split that does
    not depend on partitioning or row order."""
    return f"pmod(xxhash64({column}, {sql_literal(salt)}), 1000000) / 1000000.0"


def to_matrix(values: Any) -> np.ndarray:
    """A pandas/Arrow column of equal-length float arrays as one float32 ``[n, dim]`` matrix."""
    if len(values) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(values.to_numpy() if hasattr(values, "to_numpy") else values).astype(np.float32, copy=False)


def arrow_matrix(column: Any) -> np.ndarray:
    """An Arrow ``list<float>`` column (array or chunked) of equal-length rows as one float32 ``[n, dim]``
    matrix, straight from the values buffer: no Python object per row (what ``mapInArrow`` UDFs use).
    When the values are already float32 the matrix is a read-only view of that buffer, not a copy."""
    column, lengths = _list_lengths(column)
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if column.null_count or (lengths != lengths[0]).any():
        raise InvalidInputError("embeddings must be non-null and all of one length within a batch")
    return _values_matrix(column.flatten(), len(column), int(lengths[0]))


def _list_lengths(column: Any) -> tuple[Any, np.ndarray]:
    """An Arrow list column (array or chunked) as one array, and each row's length from its offsets."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column, np.diff(column.offsets.to_numpy())


def _values_matrix(values: Any, rows: int, dim: int) -> np.ndarray:
    """Flat Arrow values as a float32 ``[rows, dim]`` matrix: a read-only view of their buffer when they
    are float32 already, a converted copy otherwise."""
    return values.to_numpy(zero_copy_only=False).reshape(rows, dim).astype(np.float32, copy=False)


FUSION_SIGNAL = "fusion"


def composite_model_version(versions: dict[str, str]) -> str:
    """One model version for a fused SID (JSON of each signal's version, in signal order): it changes
    when any input signal's model changes, and :func:`json.loads` gives the parts back."""
    return json.dumps(versions)


def read_fused(
    tables: Tables,
    signals: list[str],
    *,
    quality: DataQualityConfig,
    job: str,
    model_versions: dict[str, str] | None = None,
    source_version: int | None = None,
) -> tuple[SignalData, dict[str, int]]:
    """All of an item's signals as one row for the fusion quantizer: the signals' embeddings
    concatenated in ``signals`` order (a missing signal as zeros), then one presence flag per signal
    (1.0 / 0.0). Returns the fused rows and each signal's dimension (the layout
    ``sidlib.quantizers.fusion`` expects). Every signal is validated on its own first."""
    import pyspark.sql.functions as F

    parts = {s: read_signal(tables, s, model_version=(model_versions or {}).get(s), quality=quality, job=job,
                            source_version=source_version) for s in signals}
    ids = None
    for part in parts.values():
        ids = part.frame.select("item_id") if ids is None else ids.unionByName(part.frame.select("item_id"))
    joined = ids.distinct()  # type: ignore[union-attr]
    for i, part in enumerate(parts.values()):
        joined = joined.join(part.frame.withColumnRenamed("embedding", f"_e{i}"), "item_id", "left")
    filled = [F.coalesce(F.col(f"_e{i}"), F.array_repeat(F.lit(0.0).cast("float"), p.dim)) for i, p in enumerate(parts.values())]
    flags = F.array(*[F.col(f"_e{i}").isNotNull().cast("float") for i in range(len(parts))])
    frame = joined.select("item_id", F.concat(*filled, flags).alias("embedding"))
    dims = {s: p.dim for s, p in parts.items()}
    fused = SignalData(
        frame=frame, signal=FUSION_SIGNAL,
        model_version=composite_model_version({s: p.model_version for s, p in parts.items()}),
        dim=sum(dims.values()) + len(dims), source_version=next(iter(parts.values())).source_version,
        rows=frame.count(), rejected={f"{s}: {r}": n for s, p in parts.items() for r, n in p.rejected.items()},
    )
    return fused, dims
