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
from sidlib.spark.histories import history_layout, impression_layout
from sidlib.spark.sampling import cold_item_predicate
from sidlib.spark.splits import cold_item_rows, split_boundaries, split_stats, with_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult(Result):
    """The ``sequences`` (or ``impressions``) version exported, the split boundaries, and the rows of
    each split written."""

    inputs: dict[str, dict[str, Any]]
    boundaries: dict[str, int | None]
    splits: dict[str, dict[str, Any]]
    written: dict[str, dict[str, Any]]
    #: The item-cold protocol (``export.cold_item_fraction``): the held-out share and seed, and their
    #: impressions dropped from train and valid and kept in test.
    cold_items: dict[str, Any] | None = None


def check_complete(tables: Any, impressions: Any, rows: int) -> dict[str, Any]:
    """The ``user_histories`` version the impressions point into and their bucket count, after
    checking that version holds exactly one event per impression, of the same SID version:
    build_sequences writes the compact tables in several commits, and a run that failed (or still
    runs) leaves them partial or from two builds."""
    pointed = impression_layout(impressions)
    if len(pointed["histories_version"]) != 1 or len(pointed["sid_version"]) != 1:
        raise TableError(f"impressions point into user_histories versions {pointed['histories_version']} with SID "
                         f"versions {pointed['sid_version']}: one of each expected; rerun build_sequences")
    histories, version = tables.read("user_histories", pointed["histories_version"][0])
    held = history_layout(histories)
    if held["events"] != rows or held["sid_version"] != pointed["sid_version"]:
        raise TableError(f"impressions has {rows} rows of SID version {pointed['sid_version']} but user_histories "
                         f"version {version} holds {held['events']} events of SID version {held['sid_version']}: "
                         f"build_sequences did not finish (or is running); rerun it")
    return {"version": version, "events": held["events"], "user_buckets": len(pointed["user_bucket"])}


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
    buckets = inputs["user_histories"]["user_buckets"] if source == "impressions" else None

    bounds = split_boundaries(seq, cfg.export.quantile_levels(), approximate=cfg.export.approximate_quantiles)
    log.info("split boundaries (first ts of valid / test): %s", bounds)
    ec = cfg.export
    cold = cold_item_predicate(ec.cold_item_seed, ec.cold_item_fraction) if ec.cold_item_fraction else None
    cold_items = None if cold is None else {"fraction": ec.cold_item_fraction, "seed": ec.cold_item_seed,
                                            **cold_item_rows(seq, bounds, cold)}
    out = with_split(seq, bounds, rows=seq_rows, rows_per_file=ec.rows_per_file,
                     columns=tuple(schemas.by_table()[target]), user_buckets=buckets, cold_items=cold)
    t0 = time.perf_counter()
    partitions = ["split"] if buckets is None else ["split", "user_bucket"]
    version = tables.write(out, target, partition_by=partitions)
    write_seconds = time.perf_counter() - t0

    splits = split_stats(tables.read_unpinned(target))
    rows = sum(s["rows"] for s in splits.values())
    expected = seq_rows - (cold_items["dropped"] if cold_items else 0)
    if rows != expected:
        raise TableError(f"{target} has {rows} rows but {source} had {seq_rows}"
                         + (f", less {cold_items['dropped']} of held-out items" if cold_items else ""))
    log.info("wrote %s version %s: %d rows (%s) in %.1fs", target, version, rows,
             ", ".join(f"{k} {v['rows']}" for k, v in splits.items()), write_seconds)
    return ExportResult(
        inputs=inputs,
        boundaries=bounds,
        splits=splits,
        written={target: {"location": tables.location(target), "version": version,
                                     "rows": rows, "seconds": round(write_seconds, 2)}},
        cold_items=cold_items,
    )
