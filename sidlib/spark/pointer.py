"""The "current SID version" pointer: one row per signal in the ``sid_pointer`` Delta table.

Switching is one MERGE commit (readers see the old or the new version, never a mix), guarded like a
compare-and-swap: the update applies only if the pointer still holds the version the caller started
from, so of two concurrent refreshes one wins and the other finds out and does nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
import pandas as pd

from sidlib import schemas
from sidlib.errors import SidlibError
from sidlib.spark.tables import Tables, quote_identifier, sql_literal

log = logging.getLogger(__name__)


class PointerConflict(SidlibError):
    """Another run switched the pointer first; this run's switch did not apply."""


@dataclass(frozen=True)
class Pointer:
    signal: str
    sid_version: int
    previous_version: int | None
    model_version: str


def current(tables: Tables, signal: str) -> Pointer | None:
    """The signal's current pointer, read fresh (not pinned: a switch must see the latest)."""
    if not tables.exists("sid_pointer"):
        return None
    rows = tables.read_unpinned("sid_pointer").where(f"signal = {sql_literal(signal)}").collect()
    if not rows:
        return None
    r = rows[0]
    return Pointer(r["signal"], int(r["sid_version"]),
                   None if r["previous_version"] is None else int(r["previous_version"]), r["model_version"])


def switch(tables: Tables, signal: str, version: int, model_version: str, *, expected: int | None) -> Pointer:
    """Point ``signal`` at ``version`` if it still points at ``expected`` (``None``: no pointer yet)."""
    row = pd.DataFrame({"signal": [signal], "sid_version": [version], "previous_version": [expected],
                        "model_version": [model_version],
                        "switched_at": [pd.Timestamp(datetime.now(timezone.utc)).tz_localize(None)]})
    source = tables.spark.createDataFrame(row, schema=schemas.ddl(schemas.SID_POINTER))
    if not tables.exists("sid_pointer"):
        tables.write(source, "sid_pointer", expected=schemas.SID_POINTER)
    else:
        view = tables.temp_view(source)
        guard = "t.sid_version IS NULL" if expected is None else f"t.sid_version = {int(expected)}"
        tables.spark.sql(
            f"MERGE INTO {tables.sql_target('sid_pointer')} AS t USING {view} AS s "
            f"ON t.{quote_identifier('signal')} = s.{quote_identifier('signal')} "
            f"WHEN MATCHED AND {guard} THEN UPDATE SET * "
            f"WHEN NOT MATCHED THEN INSERT *"
        ).collect()
        tables.spark.catalog.dropTempView(view)
    now = current(tables, signal)
    if now is None or now.sid_version != version:
        raise PointerConflict(f"sid_pointer for {signal!r} was switched concurrently to "
                              f"{None if now is None else now.sid_version}; this run's version {version} is not current")
    log.info("sid_pointer %s: %s -> %d", signal, expected, version)
    return now
