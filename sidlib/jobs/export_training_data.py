"""export_training_data: ``sequences`` -> ``ranker_training`` with a time-based ``split`` column (with
``sequences.layout: compact``, ``impressions`` -> ``ranker_impressions``, also partitioned by
``user_bucket``; their ``user_histories`` are read as they are).

The split is by the impression's ``ts`` against global quantiles: with ``q_valid = 1 - valid_fraction -
test_fraction`` and ``q_test = 1 - test_fraction``, rows with ``ts < ceil(quantile(q_valid))`` are
``train``, then ``valid`` up to ``ceil(quantile(q_test))``, the rest ``test``; so every train
impression precedes every valid one, which precedes every test one (equal timestamps never straddle
a boundary). A fraction of 0 leaves that split empty. The table is partitioned by ``split`` (the reader
picks a split's files without scanning the others) and overwritten as a whole on every run.
Read it with :func:`sidlib.reader.make_dataloader` (or :func:`sidlib.reader.dataloader_from_config`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sidlib import schemas
from sidlib.config import SidlibConfig
from sidlib.errors import TableError
from sidlib.results import Result
from sidlib.spark.histories import pointed_versions, stored_events
from sidlib.spark.splits import split_boundaries, split_stats, with_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult(Result):
    """The ``sequences`` (or ``impressions``) version exported, the split boundaries, and the rows of
    each split written."""

    inputs: dict[str, dict[str, Any]]
    boundaries: dict[str, int | None]
    splits: dict[str, dict[str, Any]]
    written: dict[str, dict[str, Any]]


def check_complete(tables: Any, impressions: Any, rows: int) -> dict[str, Any]:
    """The ``user_histories`` version the impressions point into, after checking it holds exactly
    one event per impression: build_sequences writes the compact tables in several commits, and a
    run that failed (or still runs) leaves them partial."""
    versions = pointed_versions(impressions)
    if len(versions) != 1:
        raise TableError(f"impressions point into several user_histories versions {sorted(map(str, versions))}: "
                         f"rerun build_sequences")
    histories, version = tables.read("user_histories", versions[0])
    events = stored_events(histories)
    if events != rows:
        raise TableError(f"impressions has {rows} rows but user_histories version {version} holds {events} events: "
                         f"build_sequences did not finish (or is running); rerun it")
    return {"version": version, "events": events}


def run(cfg: SidlibConfig, tables: Any) -> ExportResult:
    source = "impressions" if cfg.sequences.layout == "compact" else "sequences"
    target = cfg.sequences.training_table
    seq, seq_version = tables.read(source)
    seq_rows = seq.count()
    log.info("read %s version %s: %d rows", source, seq_version, seq_rows)
    if not seq_rows:
        raise TableError(f"{source} is empty: nothing to export")

    inputs = {source: {"version": seq_version, "rows": seq_rows}}
    if source == "impressions":
        inputs["user_histories"] = check_complete(tables, seq, seq_rows)

    bounds = split_boundaries(seq, cfg.export.quantile_levels(), approximate=cfg.export.approximate_quantiles)
    log.info("split boundaries (first ts of valid / test): %s", bounds)
    out = with_split(seq, bounds, rows=seq_rows, rows_per_file=cfg.export.rows_per_file,
                     columns=tuple(schemas.by_table()[target]))
    t0 = time.perf_counter()
    partitions = ["split", "user_bucket"] if source == "impressions" else ["split"]
    version = tables.write(out, target, partition_by=partitions)
    write_seconds = time.perf_counter() - t0

    splits = split_stats(tables.read_unpinned(target))
    rows = sum(s["rows"] for s in splits.values())
    if rows != seq_rows:
        raise TableError(f"{target} has {rows} rows but {source} had {seq_rows}")
    log.info("wrote %s version %s: %d rows (%s) in %.1fs", target, version, rows,
             ", ".join(f"{k} {v['rows']}" for k, v in splits.items()), write_seconds)
    return ExportResult(
        inputs=inputs,
        boundaries=bounds,
        splits=splits,
        written={target: {"location": tables.location(target), "version": version,
                                     "rows": rows, "seconds": round(write_seconds, 2)}},
    )
