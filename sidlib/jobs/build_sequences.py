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
from dataclasses import dataclass
from typing import Any

from sidlib import schemas
from sidlib.config import SidlibConfig
from sidlib.errors import TableError
from sidlib.results import Result
from sidlib.spark import pointer
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
    input versions read and the rows written."""

    signal: str
    sid_version: int
    sid_version_source: str
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

    out = sequence_rows(events, sids, signal=sc.signal, sid_version=version, n_codes=layout["n_codes"],
                        n_ngrams=layout["n_ngrams"], history_length=sc.history_length,
                        max_events_per_task=sc.max_events_per_task, total_rows=events_rows,
                        rows_per_file=sc.rows_per_file)
    t0 = time.perf_counter()
    written_version = tables.write(out, "sequences")
    write_seconds = time.perf_counter() - t0
    written = tables.read_unpinned("sequences")
    rows = written.count()
    if rows != events_rows:
        raise TableError(f"sequences has {rows} rows but events had {events_rows}: one row per event expected")
    log.info("wrote sequences version %s: %d rows in %.1fs (history_length %d, max_events_per_task %d)",
             written_version, rows, write_seconds, sc.history_length, sc.max_events_per_task)
    return SequencesResult(
        signal=sc.signal, sid_version=version, sid_version_source=source, history_length=sc.history_length,
        max_events_per_task=sc.max_events_per_task, n_codes=layout["n_codes"], n_ngrams=layout["n_ngrams"],
        inputs={"events": {"version": events_version, "rows": events_rows},
                "item_sids": {"version": sids_read, "rows": layout["items"]}},
        written={"sequences": {"location": tables.location("sequences"), "version": written_version,
                               "rows": rows, "seconds": round(write_seconds, 2)}},
    )
