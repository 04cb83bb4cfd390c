"""export_training_data: ``sequences`` -> ``ranker_training`` with a time-based ``split`` column.

The split is by the impression's ``ts`` against global quantiles: with ``q_valid = 1 - valid_fraction -
test_fraction`` and ``q_test = 1 - test_fraction``, rows with ``ts < ceil(quantile(q_valid))`` are
``train``, then ``valid`` up to ``ceil(quantile(q_test))``, the rest ``test``; so every train
impression precedes every valid one, which precedes every test one (equal timestamps never straddle
a boundary). A fraction of 0 leaves that split empty. The table is partitioned by ``split`` (the reader
picks a split's files without scanning the others) and overwritten as a whole on every run.
Read it with :func:`sidlib.reader.make_dataloader`."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from sidlib import schemas
from sidlib.config import ExportConfig, SidlibConfig
from sidlib.errors import ConfigError, TableError

log = logging.getLogger(__name__)

def quantile_levels(export: ExportConfig) -> tuple[float | None, float | None]:
    """The ts quantiles that start ``valid`` and ``test`` (``None``: that split is empty)."""
    v, t = float(export.valid_fraction), float(export.test_fraction)
    if not (0.0 <= v < 1.0 and 0.0 <= t < 1.0 and v + t < 1.0):
        raise ConfigError(f"export.valid_fraction ({v}) and export.test_fraction ({t}) must be in [0, 1) "
                          f"and leave a non-empty train fraction")
    q_test = None if t == 0 else 1.0 - t
    q_valid = None if v == 0 else 1.0 - v - t
    return q_valid, q_test


def split_boundaries(df: Any, export: ExportConfig) -> dict[str, int | None]:
    """``{"valid": first valid ts, "test": first test ts}`` (integer seconds; ``None`` = empty split)."""
    from pyspark.sql import functions as F

    q_valid, q_test = quantile_levels(export)
    levels = {name: q for name, q in (("valid", q_valid), ("test", q_test)) if q is not None}
    if not levels:
        return {"valid": None, "test": None}

    def quantile(q: float):  # type: ignore[no-untyped-def]
        if export.approximate_quantiles:
            return F.percentile_approx("ts", float(q), 10_000)
        return F.expr(f"percentile(ts, {float(q)!r})")

    row = df.select(*[quantile(q).alias(name) for name, q in levels.items()]).collect()[0]
    bounds: dict[str, int | None] = {"valid": None, "test": None}
    for name in levels:
        if row[name] is None:
            raise TableError("sequences is empty: nothing to export")
        bounds[name] = int(math.ceil(float(row[name])))
    if bounds["valid"] is not None and bounds["test"] is not None:
        bounds["valid"] = min(bounds["valid"], bounds["test"])
    return bounds


def with_split(df: Any, bounds: dict[str, int | None]) -> Any:
    from pyspark.sql import functions as F

    split = F.lit("train")
    if bounds["test"] is not None:
        split = F.when(F.col("ts") >= bounds["test"], "test").otherwise(split)
    if bounds["valid"] is not None:
        cond = F.col("ts") >= bounds["valid"]
        if bounds["test"] is not None:
            cond = cond & (F.col("ts") < bounds["test"])
        split = F.when(cond, "valid").otherwise(split)
    return df.withColumn("split", split)


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    from pyspark.sql import functions as F

    start = time.perf_counter()
    quantile_levels(cfg.export)  # config errors before any Spark work
    if cfg.export.rows_per_file is not None and cfg.export.rows_per_file < 1:
        raise ConfigError(f"export.rows_per_file must be >= 1 or null, got {cfg.export.rows_per_file}")
    seq, seq_version = tables.read("sequences")
    seq_rows = seq.count()
    log.info("read sequences version %s: %d rows", seq_version, seq_rows)
    if not seq_rows:
        raise TableError("sequences is empty: nothing to export")

    bounds = split_boundaries(seq, cfg.export)
    log.info("split boundaries (first ts of valid / test): %s", bounds)
    out = with_split(seq, bounds)
    if cfg.export.rows_per_file:
        # files of about rows_per_file rows: a file's row group is what Petastorm reads at once
        # (engines merge small input files into few read partitions, which would give huge ones)
        out = out.repartition(max(1, -(-seq_rows // cfg.export.rows_per_file)))
    out = out.select(*schemas.RANKER_TRAINING)
    t0 = time.perf_counter()
    version = tables.write(out, "ranker_training", partition_by=["split"])
    write_seconds = time.perf_counter() - t0

    stats = {r["split"]: r for r in tables.read_unpinned("ranker_training").groupBy("split").agg(
        F.count(F.lit(1)).alias("rows"), F.min("ts").alias("min_ts"), F.max("ts").alias("max_ts")).collect()}
    splits = {name: {"rows": int(stats[name]["rows"]) if name in stats else 0,
                     "min_ts": stats[name]["min_ts"] if name in stats else None,
                     "max_ts": stats[name]["max_ts"] if name in stats else None} for name in schemas.SPLITS}
    rows = sum(s["rows"] for s in splits.values())
    if rows != seq_rows:
        raise TableError(f"ranker_training has {rows} rows but sequences had {seq_rows}")
    log.info("wrote ranker_training version %s: %d rows (%s) in %.1fs", version, rows,
             ", ".join(f"{k} {v['rows']}" for k, v in splits.items()), write_seconds)
    return {
        "job": "export_training_data",
        "read": {"sequences": {"version": seq_version, "rows": seq_rows}},
        "boundaries": bounds,
        "splits": splits,
        "written": {"ranker_training": {"location": tables.location("ranker_training"), "version": version,
                                        "rows": rows, "seconds": round(write_seconds, 2)}},
        "seconds": round(time.perf_counter() - start, 2),
    }
