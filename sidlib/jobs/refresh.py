"""refresh: the recurring retrain, safe to run on a schedule.

For each signal in ``fit.signals`` (or the one fused SID when ``fit.quantizer`` is ``fusion``): if the
newest upstream ``model_version`` in ``content_embeddings`` differs from the one the current SID
version was trained on (or there is no current version), fit a new version, encode every item with
it, report how many items' SID prefixes changed, and switch the pointer atomically (the old version
stays in ``item_sids`` and the artifact store for rollback). Otherwise encode only new items with the
current version (``refresh.refit=true`` refits anyway). Three cases keep the current version and
only encode new items with it, saying why in the summary: a pointer a rollback holds (``held``), a new
model whose embeddings do not yet cover ``refresh.min_rollout_coverage`` of the items the current
version covers (``rollout_incomplete``: a refit then would drop the others' SIDs), and a refit that
fails the quality gate (``gated``: every check with its figures is in the summary, and the job exits
with status 3 so a scheduler alerts; ``refresh.force_switch=true`` switches anyway). See
:mod:`sidlib.steps.refresh` and :mod:`sidlib.steps.quality_gate`. With ``mlflow.enabled``, every version
fitted is an MLflow run and model version, and a switch moves the signal's model alias."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidlib.artifacts import ArtifactStore
from sidlib.cli import EXIT_GATED
from sidlib.config import SidlibConfig
from sidlib.results import Result
from sidlib.spark.fused_rows import FUSION_SIGNAL
from sidlib.steps.refresh import RefreshResult, refresh_signal
from sidlib.steps.track import log_fits, move_aliases, tracking_for


@dataclass(frozen=True)
class RefreshSummary(Result):
    """One refresh run: the ``content_embeddings`` version it read, and what it did per signal."""

    content_embeddings_version: int | None
    signals: list[RefreshResult]
    #: ``mlflow.enabled``: the runs and model versions of the versions fitted, and the aliases moved.
    mlflow: dict[str, Any] | None = None

    @property
    def exit_status(self) -> int:
        """:data:`~sidlib.cli.EXIT_GATED` when the quality gate kept any signal's pointer."""
        return EXIT_GATED if any(s.action == "gated" for s in self.signals) else 0


def run(cfg: SidlibConfig, tables: Any) -> RefreshSummary:
    tracker = tracking_for(cfg)
    source_version = tables.version("content_embeddings")
    store = ArtifactStore(cfg.artifacts.root)
    units = [FUSION_SIGNAL] if cfg.fit.quantizer == FUSION_SIGNAL else cfg.fit.signals
    results = [refresh_signal(tables, store, signal, fit=cfg.fit, quality=cfg.data_quality,
                              encoding=cfg.encode, policy=cfg.refresh, source_version=source_version)
               for signal in units]
    fitted = [r.candidate_version if r.action == "gated" else r.sid_version for r in results
              if r.action in ("refit", "lost_race", "gated")]
    runs = log_fits(tracker, store, fitted)
    tracked = None if runs is None else {
        "runs": runs, "aliases": move_aliases(tracker, {r.signal: r.sid_version for r in results if r.action == "refit"})}
    return RefreshSummary(content_embeddings_version=source_version, signals=results, mlflow=tracked)
