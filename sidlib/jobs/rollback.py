"""rollback: point ``rollback.signal``'s current SID version back to ``rollback.sid_version`` (default:
the version it replaced) and hold it there until an operator releases it
(``rollback.release=true``); :mod:`sidlib.steps.rollback`.

Idempotent: rerunning a rollback that already applied changes nothing (it does not flip back), and
while the pointer is held, ``refresh`` encodes new items with the held version but neither refits nor
switches. After a release the next refresh decides as usual. With ``mlflow.enabled`` the signal's
model alias follows the pointer (reported under ``mlflow``; a failed alias update does not undo it)."""

from __future__ import annotations

import dataclasses
from typing import Any

from sidlib.artifacts import ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.steps.rollback import RollbackResult, release, roll_back
from sidlib.steps.track import move_aliases, tracking_for


def run(cfg: SidlibConfig, tables: Any) -> RollbackResult:
    rc = cfg.rollback
    if rc.release:
        return release(tables, rc.required_signal())
    tracker = tracking_for(cfg)
    result = roll_back(tables, ArtifactStore(cfg.artifacts.root), rc.required_signal(), rc.sid_version)
    aliases = move_aliases(tracker, {result.signal: result.to_version})
    return dataclasses.replace(result, mlflow=aliases[0] if aliases else None)
