"""build_sequences: point-in-time user histories with SIDs for every impression.

For every ``events`` row, the user's last N events strictly before it (right-aligned, most recent
last, with a mask), their item ids, timestamps, clicks and packed SIDs, plus the target item's SID,
codes and n-grams, from ``item_sids`` of ``sequences.signal`` at ``sequences.sid_version`` (default:
the signal's current version in ``sid_pointer``, else the newest encoded one). ``sequences.layout``
decides what is stored: ``compact`` writes each user's events once (``user_histories``) and one row
per impression pointing into them (``impressions``), N chosen by the reader
(:mod:`sidlib.spark.histories`); ``materialized`` writes every impression's history of
``sequences.history_length`` events in its ``sequences`` row (:mod:`sidlib.spark.sequences`).
The tables are overwritten as a whole, so a rerun on the same inputs gives the same tables."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sidlib import schemas
from sidlib.config import SequencesConfig, SidlibConfig
from sidlib.errors import TableError
from sidlib.results import Result
from sidlib.spark import pointer
from sidlib.spark.session import release_freed_memory
from sidlib.spark.histories import (bucket_sizes, events_of_pass, history_layout, impression_rows, num_user_buckets,
                                   plan_passes, ranked_events, user_history_rows)
from sidlib.spark.sequences import count_rows, item_sid_layout, newest_sid_version, sequence_rows, signal_sids

log = logging.getLogger(__name__)


def resolve_sid_version(tables: Any, signal: str, requested: int | None, sids: Any) -> tuple[int, str]:
    """``(version, source)``: the configured version, else the pointer's, else the newest encoded."""
    if requested is not None:
        return int(requested), "config"
    current = pointer.current(tables, signal)
    if current is not None:
        return current.sid_version, "sid_pointer"
    newest = newest_sid_version(sids)
    if newest is None:
        raise TableError(f"item_sids has no rows for signal {signal!r}: run encode_items first")
    log.warning("no sid_pointer for %r: using the newest encoded version v%d", signal, newest)
    return newest, "newest"


@dataclass(frozen=True)
class SequencesResult(Result):
    """The SID version the histories carry (and where that choice came from), their layout, the
    input versions read and the rows written (``user_buckets``: compact layout only; ``passes``: how
    many queries wrote each table, one commit each)."""

    signal: str
    sid_version: int
    sid_version_source: str
    layout: str
    user_buckets: int | None
    passes: int
    history_length: int
    max_events_per_task: int
    n_codes: int
    n_ngrams: int
    inputs: dict[str, dict[str, Any]]
    written: dict[str, dict[str, Any]]


def run(cfg: SidlibConfig, tables: Any) -> SequencesResult:
    sc = cfg.sequences

    events, events_version = tables.read("events")
    events_rows, null_rows = count_rows(events)
    if null_rows:
        raise TableError(f"events version {events_version} has {null_rows} rows with a null "
                         f"{'/'.join(schemas.EVENTS)}: histories need every key and label")
    log.info("read events version %s: %d rows", events_version, events_rows)

    all_sids, sids_read = tables.read("item_sids")
    version, source = resolve_sid_version(tables, sc.signal, sc.sid_version, signal_sids(all_sids, sc.signal))
    sids = signal_sids(all_sids, sc.signal, version)
    layout = item_sid_layout(sids, sc.signal, version)
    log.info("read item_sids version %s: signal %s, sid_version %d (%s), %d items, %d codes, %d ngrams",
             sids_read, sc.signal, version, source, layout["items"], layout["n_codes"], layout["n_ngrams"])

    codes = {"n_codes": layout["n_codes"], "n_ngrams": layout["n_ngrams"]}
    buckets = num_user_buckets(events_rows, sc.events_per_bucket) if sc.layout == "compact" else None
    passes = 1
    if buckets is None:
        out = sequence_rows(events, sids, signal=sc.signal, sid_version=version, **codes,
                            history_length=sc.history_length, max_events_per_task=sc.max_events_per_task,
                            total_rows=events_rows, rows_per_file=sc.rows_per_file)
        written = {"sequences": write_all(tables, [out], "sequences", events_rows)}
    else:
        per_pass = sc.events_per_pass if cfg.engine.name == "local" else None  # classic Spark spills by itself
        passes, written = write_compact(tables, events, sids, sc, version, codes, events_rows, buckets, per_pass)
    log.info("build_sequences (%s layout, %d pass(es), history_length %d, max_events_per_task %d): %s", sc.layout,
             passes, sc.history_length, sc.max_events_per_task,
             ", ".join(f"{t} v{w['version']} {w['rows']} rows in {w['seconds']}s" for t, w in written.items()))
    return SequencesResult(
        signal=sc.signal, sid_version=version, sid_version_source=source, layout=sc.layout, user_buckets=buckets,
        passes=passes, history_length=sc.history_length, max_events_per_task=sc.max_events_per_task, **codes,
        inputs={"events": {"version": events_version, "rows": events_rows},
                "item_sids": {"version": sids_read, "rows": layout["items"]}},
        written=written,
    )


def write_compact(tables: Any, events: Any, sids: Any, sc: SequencesConfig, version: int, codes: dict[str, int],
                  events_rows: int, buckets: int, events_per_pass: int | None) -> tuple[int, dict[str, dict[str, Any]]]:
    """Write ``user_histories``, then ``impressions`` pointing into its new version, in passes over
    groups of user buckets of about ``events_per_pass`` events (:mod:`sidlib.spark.histories`);
    ``(passes, what was written)``."""
    groups = plan_passes(bucket_sizes(events, buckets) if events_per_pass else {}, events_per_pass)
    ranked = [ranked_events(events if len(groups) == 1 else events_of_pass(events, buckets, group), sids, **codes,
                            buckets=buckets) for group in groups]
    histories = [user_history_rows(r, signal=sc.signal, sid_version=version, max_events_per_task=sc.max_events_per_task)
                 for r in ranked]
    written = {"user_histories": write_all(tables, histories, "user_histories", events_rows, ["user_bucket"])}
    impressions = [impression_rows(r, signal=sc.signal, sid_version=version, **codes,
                                   histories_version=written["user_histories"]["version"]) for r in ranked]
    written["impressions"] = write_all(tables, impressions, "impressions", events_rows, ["user_bucket"])
    return len(groups), written


def write_all(tables: Any, parts: list[Any], table: str, events: int,
              partition_by: list[str] | None = None) -> dict[str, Any]:
    """Overwrite ``table`` with the first of ``parts``, append the others (one commit each), then
    check it holds one entry per event (an impression row, or an event in ``user_histories``'
    arrays); where it went, its version, rows and write time."""
    t0 = time.perf_counter()
    for index, df in enumerate(parts):
        previous = version if index else None
        version = tables.write(df, table, partition_by=partition_by or (), mode="append" if index else "overwrite")
        if previous is not None and version != previous + 1:
            raise TableError(f"{table}: another writer committed versions {previous + 1}..{version - 1} between this "
                             f"build's passes; run one build_sequences at a time, then rerun it")
        if len(parts) > 1:
            release_freed_memory()
            log.info("%s: pass %d of %d written", table, index + 1, len(parts))
    seconds = time.perf_counter() - t0
    written = tables.read_unpinned(table)
    if table == "user_histories":  # rows are chunks: count the events in their arrays
        layout = history_layout(written)
        rows, held = layout["rows"], layout["events"]
    else:
        rows = held = written.count()
    if held != events:
        raise TableError(f"{table} holds {held} events but events had {events}: one per event expected")
    return {"location": tables.location(table), "version": version, "rows": rows, "seconds": round(seconds, 2)}
