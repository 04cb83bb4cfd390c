"""Point a signal's current SID version back to an earlier one and hold it there
(:func:`roll_back`), or lift the hold (:func:`release`). One compare-and-swap on ``sid_pointer``
each; idempotent, so a rerun or a concurrent second run changes nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sidlib.artifacts import ArtifactStore
from sidlib.errors import SidlibError
from sidlib.results import Result
from sidlib.spark import pointer
from sidlib.spark.encode import count_version

Action = Literal["rolled_back", "already_held", "released", "not_held"]


@dataclass(frozen=True)
class RollbackResult(Result):
    """Where the pointer of ``signal`` was (``from_version``) and is now (``to_version``); ``items`` is
    the row count of the version a rollback switched to."""

    signal: str
    action: Action
    from_version: int
    to_version: int
    items: int | None = None
    #: ``mlflow.enabled``: the model alias moved to ``to_version`` (set by the job).
    mlflow: dict[str, Any] | None = None


def roll_back(tables: Any, store: ArtifactStore, signal: str, to_version: int | None = None) -> RollbackResult:
    """Hold ``signal`` at ``to_version`` (default: the version the current one replaced). The target
    must still have its artifact (checksum verified) and its rows in ``item_sids``."""
    current = pointer.current(tables, signal)
    if current is None:
        raise SidlibError(f"signal {signal!r} has no current SID version to roll back")

    def result(action: Action, now: int, items: int | None = None) -> RollbackResult:
        return RollbackResult(signal=signal, action=action, from_version=current.sid_version, to_version=now,
                              items=items)

    if current.held and to_version in (None, current.sid_version):
        return result("already_held", current.sid_version)
    target = to_version if to_version is not None else current.previous_version
    if target is None:
        raise SidlibError(f"signal {signal!r} has no previous SID version; pass rollback.sid_version=<version>")
    artifact = store.get(int(target))
    if artifact.signal != signal:
        raise SidlibError(f"artifact v{target} belongs to signal {artifact.signal!r}, not {signal!r}")
    rows = count_version(tables, int(target))
    if rows == 0:
        raise SidlibError(f"item_sids has no rows for version {target}: re-encode it before rolling back")
    try:
        now = pointer.switch(tables, signal, int(target), artifact.model_version, expected=current.sid_version,
                             held=True, over_hold=True)
    except pointer.PointerConflict:
        now = pointer.current(tables, signal)
        if now is None or not now.held or now.sid_version != int(target):
            raise
        return result("already_held", now.sid_version)  # a concurrent rollback did it
    return result("rolled_back", now.sid_version, rows)


def release(tables: Any, signal: str) -> RollbackResult:
    """Lift a rollback's hold: the pointer stays where it is, and the next refresh decides as usual."""
    current = pointer.current(tables, signal)
    if current is None:
        raise SidlibError(f"signal {signal!r} has no current SID version")
    if not current.held:
        return RollbackResult(signal=signal, action="not_held", from_version=current.sid_version,
                              to_version=current.sid_version)
    pointer.switch(tables, signal, current.sid_version, current.model_version, expected=current.sid_version,
                   over_hold=True)
    return RollbackResult(signal=signal, action="released", from_version=current.sid_version,
                          to_version=current.sid_version)
