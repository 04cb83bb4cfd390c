"""build_sequences: point-in-time user histories with SIDs, one row per impression, into ``sequences``.

For every ``events`` row, the user's last ``sequences.history_length`` events strictly before it
(right-aligned, most recent last, with a mask), their item ids, timestamps, clicks, packed SIDs and
codes, plus the target item's SID, codes and n-grams, from ``item_sids`` of ``sequences.signal`` at
``sequences.sid_version`` (default: the signal's current version in ``sid_pointer``, else the newest
encoded one). Conventions and the chunking of heavy users: :mod:`sidlib.spark.sequences`.
The table is overwritten as a whole, so a rerun on the same inputs gives the same table."""

from __future__ import annotations

import logging
import time
from typing import Any

from sidlib import schemas
from sidlib.config import SidlibConfig
from sidlib.errors import TableError
from sidlib.spark import pointer
from sidlib.spark.sequences import sequence_rows
from sidlib.spark.tables import sid_version_is, sql_literal

log = logging.getLogger(__name__)


def resolve_sid_version(tables: Any, signal: str, requested: int | None, sids: Any) -> tuple[int, str]:
    """``(version, source)``: the configured version, else the pointer's, else the newest encoded."""
    if requested is not None:
        return int(requested), "config"
    current = pointer.current(tables, signal)
    if current is not None:
        return current.sid_version, "sid_pointer"
    row = sids.agg({"sid_version": "max"}).collect()[0]
    if row[0] is None:
        raise TableError(f"item_sids has no rows for signal {signal!r}: run encode_items first")
    log.warning("no sid_pointer for %r: using the newest encoded version v%d", signal, row[0])
    return int(row[0]), "newest"


def count_rows(events: Any) -> tuple[int, int]:
    """``(rows, rows with a null in any events column)`` in one pass."""
    from pyspark.sql import functions as F

    any_null = F.greatest(*[F.col(c).isNull().cast("int") for c in schemas.EVENTS])
    row = events.agg(F.count(F.lit(1)).alias("rows"), F.sum(any_null).alias("nulls")).collect()[0]
    return int(row["rows"]), int(row["nulls"] or 0)


def item_sid_layout(sids: Any, signal: str, version: int) -> dict[str, int]:
    """Row count, codes and n-gram widths of one version; refuses ragged or duplicated rows."""
    from pyspark.sql import functions as F

    row = sids.agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct("item_id").alias("items"),
        F.min(F.size("codes")).alias("codes_min"), F.max(F.size("codes")).alias("codes_max"),
        F.min(F.size("ngrams")).alias("ngrams_min"), F.max(F.size("ngrams")).alias("ngrams_max"),
    ).collect()[0]
    where = f"item_sids (signal {signal!r}, sid_version {version})"
    if not row["rows"]:
        raise TableError(f"{where} has no rows: encode that version first or pick another sequences.sid_version")
    if row["rows"] != row["items"]:
        raise TableError(f"{where} has {row['rows']} rows for {row['items']} items: duplicate item_id")
    if row["codes_min"] != row["codes_max"] or row["codes_min"] < 1:
        raise TableError(f"{where}: codes must all have the same length >= 1, "
                         f"got {row['codes_min']}..{row['codes_max']}")
    if row["ngrams_min"] != row["ngrams_max"]:
        raise TableError(f"{where}: ngrams must all have the same length, got {row['ngrams_min']}..{row['ngrams_max']}")
    return {"items": int(row["items"]), "n_codes": int(row["codes_min"]), "n_ngrams": int(max(row["ngrams_min"], 0))}


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    sc = cfg.sequences
    start = time.perf_counter()

    events, events_version = tables.read("events")
    events_rows, null_rows = count_rows(events)
    if null_rows:
        raise TableError(f"events version {events_version} has {null_rows} rows with a null "
                         f"{'/'.join(schemas.EVENTS)}: histories need every key and label")
    log.info("read events version %s: %d rows", events_version, events_rows)

    all_sids, sids_read = tables.read("item_sids")
    signal_sids = all_sids.where(f"signal = {sql_literal(sc.signal)}")
    version, source = resolve_sid_version(tables, sc.signal, sc.sid_version, signal_sids)
    sids = signal_sids.where(sid_version_is(version))
    layout = item_sid_layout(sids, sc.signal, version)
    log.info("read item_sids version %s: signal %s, sid_version %d (%s), %d items, %d codes, %d ngrams",
             sids_read, sc.signal, version, source, layout["items"], layout["n_codes"], layout["n_ngrams"])

    out = sequence_rows(events, sids.select("item_id", "sid", "codes", "ngrams"), signal=sc.signal,
                          sid_version=version, n_codes=layout["n_codes"], n_ngrams=layout["n_ngrams"],
                          history_length=sc.history_length, max_events_per_task=sc.max_events_per_task,
                          total_rows=events_rows, rows_per_file=sc.rows_per_file)
    t0 = time.perf_counter()
    written_version = tables.write(out, "sequences")
    write_seconds = time.perf_counter() - t0
    written = tables.read_unpinned("sequences")
    rows = written.count()
    if rows != events_rows:
        raise TableError(f"sequences has {rows} rows but events had {events_rows}: one row per event expected")
    log.info("wrote sequences version %s: %d rows in %.1fs (history_length %d, max_events_per_task %d)",
             written_version, rows, write_seconds, sc.history_length, sc.max_events_per_task)
    return {
        "job": "build_sequences",
        "signal": sc.signal,
        "sid_version": version,
        "sid_version_source": source,
        "history_length": sc.history_length,
        "max_events_per_task": sc.max_events_per_task,
        "n_codes": layout["n_codes"],
        "n_ngrams": layout["n_ngrams"],
        "read": {"events": {"version": events_version, "rows": events_rows},
                 "item_sids": {"version": sids_read, "rows": layout["items"]}},
        "written": {"sequences": {"location": tables.location("sequences"), "version": written_version,
                                  "rows": rows, "seconds": round(write_seconds, 2)}},
        "seconds": round(time.perf_counter() - start, 2),
    }
