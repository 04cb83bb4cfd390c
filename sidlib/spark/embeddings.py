"""Read one signal's embeddings from ``content_embeddings``, validated, for fitting and encoding.

Rows that cannot be used are never dropped silently: each gets a reason (:mod:`sidlib.spark.row_checks`),
is counted in the job summary and set aside by the ``data_quality.on_bad_rows`` policy
(:mod:`sidlib.spark.quarantine`). Validation is SQL expressions on the engine, so bad rows are found
without collecting anything. Two ways in:

* :func:`read_signal`: the valid rows, checked first (what the fit and the incremental encode read);
* :func:`read_for_encode`: rows for a consumer that reads every embedding anyway and checks rows as it
  reads them (the full encode's UDF): the checks' scan is skipped when it can be, and
  :meth:`RowsToEncode.settle` (the only way to the read's :class:`SignalData`) accounts for the rows the
  consumer dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from sidlib.config import DataQualityConfig
from sidlib.errors import TableError
from sidlib.spark.quarantine import set_aside
from sidlib.spark.row_checks import (IDENTITY_CASES, IDENTITY_PROBLEMS, REASON, UNATTRIBUTED, has_duplicate_ids,
                                     profile_reason, sampled_size, unattributed_reason, value_problem_sql)
from sidlib.spark.tables import Tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class RowsToEncode:
    """Rows handed to a consumer that drops unusable ones itself (:func:`sidlib.spark.row_checks.usable_rows`).
    ``settle(kept)``, given how many rows the consumer kept, returns the read's :class:`SignalData` with
    the rejected rows classified and set aside."""

    frame: "DataFrame"
    dim: int
    settle: Callable[[int], SignalData]

    @classmethod
    def checked(cls, data: SignalData) -> "RowsToEncode":
        """Rows that were checked before the consumer saw them: nothing is left to settle."""
        return cls(data.frame, data.dim, lambda kept: data)


@dataclass(frozen=True)
class _Selection:
    """The rows of one signal at one model version in one pinned read, before any row check."""

    rows: "DataFrame"
    signal: str
    model_version: str
    source_version: int | None
    selected: int
    unattributed: dict[str, int]
    duplicated: bool


def latest_model_version(df: "DataFrame", signal: str) -> str:
    """The model version most recently logged for ``signal`` (what a refresh should train on)."""
    import pyspark.sql.functions as F

    row = (df.where(F.col("signal") == signal).groupBy("model_version").agg(F.max("logged_at").alias("at"))
           .orderBy(F.col("at").desc(), F.col("model_version").desc()).limit(1).collect())
    if not row:
        signals = sorted(r["signal"] for r in df.select("signal").distinct().collect())
        raise TableError(f"signal {signal!r} not in content_embeddings (found: {', '.join(signals) or 'no rows'})")
    return str(row[0]["model_version"])


def read_signal(tables: Tables, signal: str, *, model_version: str | None = None, dim: int | None = None,
                quality: DataQualityConfig, job: str, source_version: int | None = None) -> SignalData:
    """Valid embeddings of ``signal`` at ``model_version`` (default: the newest one), with bad rows
    handled by ``quality``. ``dim`` defaults to the most common embedding size of the signal."""
    return _checked(tables, _select(tables, signal, model_version, quality, job, source_version), dim, quality, job)


def read_for_encode(tables: Tables, signal: str, *, model_version: str, dim: int, quality: DataQualityConfig,
                    job: str, source_version: int | None = None) -> RowsToEncode:
    """Rows of ``signal`` for an encode whose UDF drops rows that are not usable ``dim``-long embeddings.

    Checking first costs a scan that decodes every embedding, about a third of the encode job. When bad
    rows would be quarantined, no item id repeats and a sample of rows has size ``dim``, the rows come
    unchecked and :meth:`RowsToEncode.settle` classifies and quarantines the bad ones only if the UDF
    dropped any. Otherwise (``on_bad_rows: fail``, repeated ids, or a sample of another size, which may
    be the table's real size or a few bad rows that happen to come first) the full check runs first and
    finds the most common size."""
    selection = _select(tables, signal, model_version, quality, job, source_version)
    if quality.on_bad_rows == "quarantine" and not selection.duplicated:
        sampled = sampled_size(selection.rows)
        if selection.selected and sampled == dim:
            log.info("signal %s@%s: %d rows (dim %d) from content_embeddings v%s, checked while encoding",
                     signal, selection.model_version, selection.selected, dim, selection.source_version)
            return RowsToEncode(selection.rows.select("item_id", "embedding"), int(dim),
                                lambda kept: _settle(tables, selection, int(dim), kept, quality, job))
        log.info("signal %s@%s: sampled rows have dim %s, not %d: checking every row first", signal,
                 selection.model_version, sampled, dim)
    return RowsToEncode.checked(_checked(tables, selection, None, quality, job))


def _select(tables: Tables, signal: str, model_version: str | None, quality: DataQualityConfig, job: str,
            source_version: int | None) -> _Selection:
    """Pin the read, pick the model version, and set aside the rows no read selects."""
    import pyspark.sql.functions as F

    df, version = tables.read("content_embeddings", version=source_version)
    model_version = model_version or latest_model_version(df, signal)
    selected, unattributed = _row_counts(df, signal, model_version)
    if unattributed:
        orphans = df.withColumn(REASON, unattributed_reason(signal)).where(F.col(REASON).isNotNull())
        set_aside(tables, orphans, unattributed, quality, job, version, signal)
    rows = df.where((F.col("signal") == signal) & (F.col("model_version") == model_version))
    return _Selection(rows, signal, model_version, version, selected, unattributed, has_duplicate_ids(rows))


def _checked(tables: Tables, selection: _Selection, dim: int | None, quality: DataQualityConfig,
             job: str) -> SignalData:
    """The selection's valid rows, every row checked and the bad ones set aside."""
    import pyspark.sql.functions as F
    from pyspark.sql import Window

    rows, signal, model_version, version = (selection.rows, selection.signal, selection.model_version,
                                            selection.source_version)
    values = value_problem_sql(quality.max_abs_value)
    # One scan profiles every row (size and the size-independent problems): it gives the dimension and,
    # unless ids repeat, every count; the encode or fit pass is then the only other read of the embeddings.
    profile = [(-1 if r["n"] is None else int(r["n"]), r["problem"], int(r["count"])) for r in rows.groupBy(
        F.size("embedding").alias("n"), F.expr(f"CASE {IDENTITY_CASES} ELSE {values} END").alias("problem"),
    ).count().collect()]
    if dim is None:
        sizes: Counter[int] = Counter()
        for size, problem, count in profile:
            if problem not in IDENTITY_PROBLEMS:
                sizes[size] += count
        if not sizes:
            raise TableError(f"no usable rows for signal {signal!r} at model_version {model_version!r}")
        dim = min(sizes, key=lambda size: (-sizes[size], size))
    row_problem = F.expr(f"CASE {IDENTITY_CASES} WHEN size(embedding) != {int(dim)} THEN 'wrong dimension' "
                         f"ELSE {values} END")
    checked = rows.withColumn(REASON, row_problem)
    if selection.duplicated:
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
            rejected[profile_reason(size, problem, int(dim))] += count
    n = rejected.pop(None, 0)
    rejected = {reason: count for reason, count in rejected.items() if count}
    if rejected:
        set_aside(tables, checked.where(F.col(REASON).isNotNull()), rejected, quality, job, version, signal)
    # the read is pinned to one table version, so when the profile found nothing to reject the rows need
    # no per-row check again in the encode or fit pass
    valid = (checked.where(F.col(REASON).isNull()) if rejected else rows).select("item_id", "embedding")
    if n == 0:
        raise TableError(f"no valid rows for signal {signal!r} at model_version {model_version!r}")
    rejected = {**selection.unattributed, **rejected}
    log.info("signal %s@%s: %d valid rows (dim %d) from content_embeddings v%s, rejected %s",
             signal, model_version, n, dim, version, rejected or "none")
    return SignalData(valid, signal, model_version, int(dim), version, n, rejected)


def _settle(tables: Tables, selection: _Selection, dim: int, kept: int, quality: DataQualityConfig,
            job: str) -> SignalData:
    """Account for the rows an unchecked consumer dropped: none (``kept`` is every selected row) costs
    nothing; otherwise the selection is checked after all (same pinned table version), which sets the
    bad rows aside and counts them by reason. The consumer's rule and the SQL checks must agree on which
    rows are valid; if they do not, this raises rather than lose rows silently."""
    if kept == selection.selected:
        return SignalData(selection.rows.select("item_id", "embedding"), selection.signal, selection.model_version,
                          dim, selection.source_version, selection.selected, dict(selection.unattributed))
    checked = _checked(tables, selection, dim, quality, job)
    if checked.rejected.get("wrong dimension", 0) > checked.rows:
        raise TableError(f"most rows of signal {selection.signal!r} are not {dim} long ({checked.rejected}); the "
                         f"{checked.rows} that are were written, but the artifact does not fit this data: refit")
    if checked.rows != kept:
        raise TableError(f"{job} kept {kept} rows of signal {selection.signal!r} but {checked.rows} are valid "
                         f"(rejected: {checked.rejected})")
    return checked


def _row_counts(df: "DataFrame", signal: str, model_version: str) -> tuple[int, dict[str, int]]:
    """One pass over the scalar columns: the rows of ``signal`` at ``model_version``, and the
    unattributed rows by reason (they would otherwise vanish in the filter)."""
    import pyspark.sql.functions as F

    reason = unattributed_reason(signal)
    row = df.agg(F.count(F.when((F.col("signal") == signal) & (F.col("model_version") == model_version), 1))
                 .alias("selected"), *[F.count(F.when(reason == r, 1)).alias(r) for r in UNATTRIBUTED]).collect()[0]
    return int(row["selected"]), {r: int(row[r]) for r in UNATTRIBUTED if row[r]}
