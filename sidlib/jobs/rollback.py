"""rollback: point a signal's current SID version back to an earlier one (default: the version it
replaced) and hold it there until an operator releases it. One compare-and-swap on ``sid_pointer``;
the target version must still have its artifact (checksum verified) and its rows in ``item_sids``.

Idempotent: rerunning a rollback that already applied changes nothing (it does not flip back), and
while the pointer is held, ``refresh`` encodes new items with the held version but neither refits nor
switches. ``rollback.release=true`` lifts the hold; the next refresh then decides as usual."""

from __future__ import annotations

from typing import Any

from sidlib.artifacts import ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.errors import ConfigError, SidlibError
from sidlib.spark import pointer
from sidlib.spark.tables import sid_version_is


def rollback(cfg: SidlibConfig, tables: Any, signal: str, to_version: int | None = None) -> dict[str, Any]:
    """Hold ``signal`` at ``to_version`` (default: the version the current one replaced)."""
    current = pointer.current(tables, signal)
    if current is None:
        raise SidlibError(f"signal {signal!r} has no current SID version to roll back")
    summary = {"job": "rollback", "signal": signal, "from_version": current.sid_version}
    if current.held and to_version in (None, current.sid_version):
        return {**summary, "action": "already_held", "to_version": current.sid_version}
    target = to_version if to_version is not None else current.previous_version
    if target is None:
        raise SidlibError(f"signal {signal!r} has no previous SID version; pass rollback.sid_version=<version>")
    artifact = ArtifactStore(cfg.artifacts.root).get(int(target))
    if artifact.signal != signal:
        raise SidlibError(f"artifact v{target} belongs to signal {artifact.signal!r}, not {signal!r}")
    rows = tables.read_unpinned("item_sids").where(sid_version_is(target)).count() if tables.exists("item_sids") else 0
    if rows == 0:
        raise SidlibError(f"item_sids has no rows for version {target}: re-encode it before rolling back")
    try:
        now = pointer.switch(tables, signal, int(target), artifact.model_version, expected=current.sid_version,
                             held=True, over_hold=True)
    except pointer.PointerConflict:
        now = pointer.current(tables, signal)
        if now is None or not now.held or now.sid_version != int(target):
            raise
        return {**summary, "action": "already_held", "to_version": now.sid_version}  # a concurrent rollback did it
    return {**summary, "action": "rolled_back", "to_version": now.sid_version, "items": rows}


def release(tables: Any, signal: str) -> dict[str, Any]:
    """Lift a rollback's hold: the pointer stays where it is, and the next refresh decides as usual."""
    current = pointer.current(tables, signal)
    if current is None:
        raise SidlibError(f"signal {signal!r} has no current SID version")
    summary = {"job": "rollback", "signal": signal, "sid_version": current.sid_version}
    if not current.held:
        return {**summary, "action": "not_held"}
    pointer.switch(tables, signal, current.sid_version, current.model_version, expected=current.sid_version,
                   over_hold=True)
    return {**summary, "action": "released"}


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    """CLI form: ``rollback.signal``, ``rollback.sid_version`` (optional), ``rollback.release``."""
    rc = cfg.rollback
    if rc.signal is None:
        raise ConfigError("rollback.signal is required: name the signal to roll back (e.g. rollback.signal=text)")
    if rc.release:
        if rc.sid_version is not None:
            raise ConfigError("rollback.release lifts the hold where the pointer is; it takes no rollback.sid_version")
        return release(tables, rc.signal)
    return rollback(cfg, tables, rc.signal, rc.sid_version)
