"""Make a new SID version current: :func:`switch_pointer`, the one compare-and-swap on
``sid_pointer`` that refresh and the notebooks use."""

from __future__ import annotations

import logging
from typing import Any, Literal

from sidlib.spark import pointer

log = logging.getLogger(__name__)

SwitchAction = Literal["switched", "lost_race"]


def switch_pointer(tables: Any, signal: str, version: int, model_version: str, *,
                   expected: int | None) -> SwitchAction:
    """Point ``signal`` at ``version`` if it still points at ``expected`` (``None``: no pointer yet).
    Another run that switched first wins: ``lost_race``, the pointer left as that run set it (its
    version stays in ``item_sids`` and the artifact store)."""
    try:
        pointer.switch(tables, signal, version, model_version, expected=expected)
    except pointer.PointerConflict as exc:
        log.warning("%s", exc)
        return "lost_race"
    return "switched"
