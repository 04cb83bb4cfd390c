"""The time-based ``split`` of ``ranker_training``: boundaries from global quantiles of ``ts``, the
column they give, and the per-split counts written."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from sidlib import schemas
from sidlib.errors import TableError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def split_boundaries(df: "DataFrame", levels: tuple[float | None, float | None], *,
                     approximate: bool) -> dict[str, int | None]:
    """``{"valid": first valid ts, "test": first test ts}`` (integer seconds; ``None`` = empty split)
    at the ``(valid, test)`` quantile ``levels`` of ``ts``: exact (``percentile``) unless
    ``approximate`` (``percentile_approx``)."""
    from pyspark.sql import functions as F

    wanted = {name: q for name, q in zip(("valid", "test"), levels) if q is not None}
    if not wanted:
        return {"valid": None, "test": None}

    def quantile(q: float):  # type: ignore[no-untyped-def]
        if approximate:
            return F.percentile_approx("ts", float(q), 10_000)
        return F.expr(f"percentile(ts, {float(q)!r})")

    row = df.select(*[quantile(q).alias(name) for name, q in wanted.items()]).collect()[0]
    bounds: dict[str, int | None] = {"valid": None, "test": None}
    for name in wanted:
        if row[name] is None:
            raise TableError("sequences is empty: nothing to export")
        bounds[name] = int(math.ceil(float(row[name])))
    if bounds["valid"] is not None and bounds["test"] is not None:
        bounds["valid"] = min(bounds["valid"], bounds["test"])
    return bounds


def with_split(df: "DataFrame", bounds: dict[str, int | None], *, rows: int, rows_per_file: int | None,
               columns: Sequence[str] = tuple(schemas.RANKER_TRAINING), user_buckets: int | None = None,
               cold_items: str | None = None) -> "DataFrame":
    """``df`` (of ``rows`` rows) with its ``split`` column, in ``columns`` (the output table's), in files
    of about ``rows_per_file`` rows (``None``: the input's layout). A file's row group is what
    Petastorm reads at once, and engines merge small input files into few read partitions, which
    would give huge ones. With ``user_buckets`` (the table is also partitioned by ``user_bucket``)
    rows are spread by split, bucket and a hash of the user, so each task writes into few partition
    directories instead of a small file into every one of them. ``cold_items`` (a predicate on
    ``item_id``): those items' impressions are kept only in ``test``."""
    from pyspark.sql import functions as F

    split = F.lit("train")
    if bounds["test"] is not None:
        split = F.when(F.col("ts") >= bounds["test"], "test").otherwise(split)
    if bounds["valid"] is not None:
        cond = F.col("ts") >= bounds["valid"]
        if bounds["test"] is not None:
            cond = cond & (F.col("ts") < bounds["test"])
        split = F.when(cond, "valid").otherwise(split)
    out = df.withColumn("split", split)
    if cold_items is not None:
        out = out.where(~(F.expr(cold_items) & (F.col("split") != "test")))
    if rows_per_file:
        files = max(1, -(-rows // rows_per_file))
        if user_buckets is None:
            out = out.repartition(files)
        else:  # about `files` tasks over the (split, bucket) directories, users spread within each
            per_directory = max(1, -(-files // (len(schemas.SPLITS) * int(user_buckets))))
            out = out.repartition(files, "split", "user_bucket", F.pmod(F.xxhash64("user_id"), F.lit(per_directory)))
    return out.select(*columns)


def split_stats(df: "DataFrame") -> dict[str, dict[str, Any]]:
    """Rows and ``ts`` range of each split of :data:`sidlib.schemas.SPLITS` in ``df`` (an empty split:
    0 rows, ``None`` bounds)."""
    from pyspark.sql import functions as F

    stats = {r["split"]: r for r in df.groupBy("split").agg(
        F.count(F.lit(1)).alias("rows"), F.min("ts").alias("min_ts"), F.max("ts").alias("max_ts")).collect()}
    return {name: {"rows": int(stats[name]["rows"]) if name in stats else 0,
                   "min_ts": stats[name]["min_ts"] if name in stats else None,
                   "max_ts": stats[name]["max_ts"] if name in stats else None} for name in schemas.SPLITS}



def cold_item_rows(df: "DataFrame", bounds: dict[str, int | None], cold_items: str) -> dict[str, int]:
    """Impressions of the held-out items before the test boundary (``dropped``: they leave train and
    valid) and from it on (``test``: the cold test impressions)."""
    from pyspark.sql import functions as F

    in_test = F.lit(False) if bounds["test"] is None else F.col("ts") >= bounds["test"]
    row = df.where(cold_items).agg(F.sum(F.when(in_test, 0).otherwise(1)).alias("dropped"),
                                   F.sum(F.when(in_test, 1).otherwise(0)).alias("test")).collect()[0]
    return {"dropped": int(row["dropped"] or 0), "test": int(row["test"] or 0)}
