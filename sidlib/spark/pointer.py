"""The "current SID version" pointer: one row per signal in the ``sid_pointer`` table.

A switch is a compare-and-swap: it applies only if the signal's pointer still holds the version the
caller started from, so of two concurrent refreshes (or rollbacks) exactly one wins and the other gets
:class:`PointerConflict` (reported as ``lost_race``), never an engine traceback.

* **Path tables (any ``tables.format``)**: ``sid_pointer`` is always a Delta table, written with
  delta-rs from the driver, so the swap is atomic on Parquet pipelines too (Parquet has no MERGE). Each
  switch rewrites the few-row table as one commit at exactly the version it read (no commit retries:
  Delta's put-if-absent of the next log entry is the CAS). When that entry is taken, by a run switching
  another signal or creating the table at the same time, the switch re-reads and tries again while its
  own signal still holds ``expected``. Readers see the old or the new pointer, never a mix.
* **Catalog tables** (``tables.database``, Delta): one guarded ``MERGE`` through the session; a commit
  conflict the engine reports is re-checked the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sidlib import schemas
from sidlib.errors import SidlibError, TableError
from sidlib.spark.tables import Tables, equality_predicate, quote_identifier

log = logging.getLogger(__name__)

#: Attempts of one switch whose commit slot another run took; each attempt re-checks ``expected``.
MAX_ATTEMPTS = 20


class PointerConflict(SidlibError):
    """Another run switched the pointer first; this run's switch did not apply."""

    def __init__(self, signal: str, now: "Pointer | None", version: int) -> None:
        how = "is held by a rollback at" if now is not None and now.held else "was switched concurrently to"
        super().__init__(f"sid_pointer for {signal!r} {how} {now.sid_version if now else None}; this run's "
                         f"version {version} is not current")


@dataclass(frozen=True)
class Pointer:
    signal: str
    sid_version: int
    previous_version: int | None
    model_version: str
    #: Set by a rollback: scheduled refreshes leave a held pointer where it is until an operator
    #: releases it (``rollback.release=true``).
    held: bool = False


def current(tables: Tables, signal: str) -> Pointer | None:
    """The signal's current pointer, read fresh (not pinned: a switch must see the latest)."""
    return _read(tables)[1].get(signal)


def switch(tables: Tables, signal: str, version: int, model_version: str, *, expected: int | None,
           held: bool = False, over_hold: bool = False) -> Pointer:
    """Point ``signal`` at ``version`` if it still points at ``expected`` (``None``: no pointer yet),
    held or not. A held pointer moves only for ``over_hold`` (rollback and its release), so a refresh
    that started before a rollback cannot undo it. Re-pointing the version it holds only changes
    ``held`` and keeps its previous version."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        table_version, pointers = _read(tables)
        now = pointers.get(signal)
        if (now.sid_version if now else None) != expected or (now is not None and now.held and not over_hold):
            raise PointerConflict(signal, now, version)
        previous = now.previous_version if now is not None and now.sid_version == version else expected
        new = Pointer(signal, int(version), previous, model_version, held)
        if _commit(tables, table_version, {**pointers, signal: new}, signal, expected, over_hold):
            log.info("sid_pointer %s: %s -> %d", signal, expected, version)
            return new
        log.info("sid_pointer commit slot taken by another run (attempt %d); re-reading", attempt)
        time.sleep(0.05 * attempt)
    raise TableError(f"sid_pointer: gave up switching {signal!r} after {MAX_ATTEMPTS} commit conflicts")


# ----------------------------------------------------------------------------------- storage
def _read(tables: Tables) -> tuple[int | None, dict[str, Pointer]]:
    """``(table version, pointers by signal)``; ``(None, {})`` before the first switch."""
    if tables.by_path:
        return _read_delta_rs(Path(tables.location("sid_pointer")))
    if not tables.exists("sid_pointer"):
        return None, {}
    rows = [r.asDict() for r in tables.read_unpinned("sid_pointer").collect()]
    return None, _pointers(rows)


def _pointers(rows: list[dict[str, Any]]) -> dict[str, Pointer]:
    """Pointers from table rows (tables written before ``held`` existed have no such column)."""
    return {r["signal"]: Pointer(r["signal"], int(r["sid_version"]),
                                 None if r["previous_version"] is None else int(r["previous_version"]),
                                 r["model_version"], bool(r.get("held"))) for r in rows}


def _read_delta_rs(path: Path) -> tuple[int | None, dict[str, Pointer]]:
    if not (path / "_delta_log").is_dir():
        return None, {}
    import pyarrow.parquet as pq
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(str(path))
    except TableNotFoundError:  # another run is creating it: its log has no commit yet
        return None, {}
    rows = [row for uri in table.file_uris() for row in pq.read_table(uri.removeprefix("file://")).to_pylist()]
    return int(table.version()), _pointers(rows)


def _commit(tables: Tables, read_version: int | None, pointers: dict[str, Pointer], signal: str,
            expected: int | None, over_hold: bool) -> bool:
    """Write ``pointers`` as the table's next version after ``read_version``; False if another run
    committed that version first."""
    if tables.by_path:
        return _commit_delta_rs(Path(tables.location("sid_pointer")), read_version, pointers)
    return _merge_catalog(tables, pointers[signal], expected, over_hold)


def _arrow_rows(pointers: dict[str, Pointer]) -> "Any":
    import pyarrow as pa

    now = datetime.now(timezone.utc)
    ordered = [pointers[s] for s in sorted(pointers)]
    return pa.table({
        "signal": pa.array([p.signal for p in ordered], pa.string()),
        "sid_version": pa.array([p.sid_version for p in ordered], pa.int64()),
        "previous_version": pa.array([p.previous_version for p in ordered], pa.int64()),
        "model_version": pa.array([p.model_version for p in ordered], pa.string()),
        "switched_at": pa.array([now] * len(ordered), pa.timestamp("us", tz="UTC")),
        "held": pa.array([p.held for p in ordered], pa.bool_()),
    })


def _commit_delta_rs(path: Path, read_version: int | None, pointers: dict[str, Pointer]) -> bool:
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError, DeltaError

    data = _arrow_rows(pointers)
    no_retry = CommitProperties(max_commit_retries=0)
    try:
        if read_version is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_deltalake(str(path), data, mode="error", commit_properties=no_retry)
        else:
            write_deltalake(DeltaTable(str(path), version=read_version), data, mode="overwrite",
                            schema_mode="overwrite", commit_properties=no_retry)
        return True
    except CommitFailedError:
        return False
    except DeltaError as exc:
        if read_version is None and (path / "_delta_log").is_dir():  # another run created it first
            log.info("sid_pointer created concurrently (%s)", str(exc).splitlines()[0][:200])
            return False
        raise


#: Fragments of the commit-conflict errors Delta engines raise for a concurrent MERGE.
_CONFLICT_MARKERS = ("concurrent", "failed to commit transaction", "conflict")


def _merge_catalog(tables: Tables, new: Pointer, expected: int | None, over_hold: bool) -> bool:
    """The catalog-table swap: a ``MERGE`` guarded by the expected version (the guard makes it a CAS
    within the engine's own transaction)."""
    import pandas as pd

    frame = _arrow_rows({new.signal: new}).to_pandas()
    frame["switched_at"] = pd.to_datetime(frame["switched_at"]).dt.tz_localize(None)
    source = tables.spark.createDataFrame(frame, schema=schemas.ddl(schemas.SID_POINTER))
    try:
        if not tables.exists("sid_pointer"):
            tables.write(source, "sid_pointer", mode="append")
            return True
        if "held" not in tables.read_unpinned("sid_pointer").columns:  # a table from before holds existed
            tables.spark.sql(f"ALTER TABLE {tables.sql_target('sid_pointer')} ADD COLUMNS (held BOOLEAN)").collect()
        view = tables.temp_view(source)
        guard = "t.sid_version IS NULL" if expected is None else equality_predicate({"sid_version": int(expected)}, "t")
        if not over_hold:
            guard += " AND NOT coalesce(t.held, false)"
        try:
            tables.spark.sql(
                f"MERGE INTO {tables.sql_target('sid_pointer')} AS t USING {view} AS s "
                f"ON t.{quote_identifier('signal')} = s.{quote_identifier('signal')} "
                f"WHEN MATCHED AND {guard} THEN UPDATE SET * "
                f"WHEN NOT MATCHED THEN INSERT *"
            ).collect()
        finally:
            tables.spark.catalog.dropTempView(view)
    except Exception as exc:  # engines raise their own exception types for commit conflicts
        if any(marker in str(exc).lower() for marker in _CONFLICT_MARKERS):
            return False
        raise
    now = _read(tables)[1].get(new.signal)
    if now is None or (now.sid_version, now.held) != (new.sid_version, new.held):
        raise PointerConflict(new.signal, now, new.sid_version)
    return True

