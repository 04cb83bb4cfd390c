"""rollback: point a signal's current SID version back to an earlier one (default: the version it
replaced). One compare-and-swap MERGE on ``sid_pointer``; the target version must still have its
artifact (checksum verified) and its rows in ``item_sids``."""

from __future__ import annotations

from typing import Any

from sidlib.artifacts import ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.errors import SidlibError
from sidlib.spark import pointer


def rollback(cfg: SidlibConfig, tables: Any, signal: str, to_version: int | None = None) -> dict[str, Any]:
    current = pointer.current(tables, signal)
    if current is None:
        raise SidlibError(f"signal {signal!r} has no current SID version to roll back")
    target = to_version if to_version is not None else current.previous_version
    if target is None:
        raise SidlibError(f"signal {signal!r} has no previous SID version; pass encode.sid_version=<version>")
    artifact = ArtifactStore(cfg.artifacts.root).get(int(target))
    if artifact.signal != signal:
        raise SidlibError(f"artifact v{target} belongs to signal {artifact.signal!r}, not {signal!r}")
    rows = tables.read_unpinned("item_sids").where(f"sid_version = {int(target)}").count() if tables.exists("item_sids") else 0
    if rows == 0:
        raise SidlibError(f"item_sids has no rows for version {target}: re-encode it before rolling back")
    now = pointer.switch(tables, signal, int(target), artifact.model_version, expected=current.sid_version)
    return {"job": "rollback", "signal": signal, "from_version": current.sid_version, "to_version": now.sid_version,
            "items": rows}


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    """CLI form: ``encode.signal`` names the signal, ``encode.sid_version`` the target (optional)."""
    return rollback(cfg, tables, cfg.encode.signal, cfg.encode.sid_version)
