"""The jobs' way to MLflow (:mod:`sidlib.tracking`): only imported, with MLflow, when ``mlflow.enabled``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidlib.artifacts import ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.errors import ConfigError

if TYPE_CHECKING:
    from sidlib.tracking import Tracking


def tracking_for(cfg: SidlibConfig) -> "Tracking | None":
    """The run's tracking, or ``None`` when ``mlflow.enabled`` is false (MLflow is then not imported).
    Jobs call it before their first step, so a missing MLflow stops them before anything changed."""
    if not cfg.mlflow.enabled:
        return None
    try:
        from sidlib.tracking import Tracking
    except ImportError as exc:
        raise ConfigError(f"mlflow.enabled=true needs MLflow: pip install 'sidlib[mlflow]' ({exc})") from None
    return Tracking(cfg.mlflow, cfg.tables)


def log_fits(tracker: "Tracking | None", store: ArtifactStore, versions: list[int]) -> list[dict[str, Any]] | None:
    """One MLflow run and model version per fitted artifact version; ``None`` without tracking."""
    return None if tracker is None else [{"sid_version": v, **tracker.log_fit(store, v)} for v in versions]


def move_aliases(tracker: "Tracking | None", moved: dict[str, int]) -> list[dict[str, Any]] | None:
    """Each signal's model alias to the SID version its pointer moved to; ``None`` without tracking."""
    return None if tracker is None else [{"signal": s, "sid_version": v, **tracker.move_alias(s, v)}
                                         for s, v in moved.items()]
