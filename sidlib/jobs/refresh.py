"""refresh: the recurring retrain, safe to run on a schedule.

For each signal in ``fit.signals`` (or the one fused SID when ``fit.quantizer`` is ``fusion``): if the
newest upstream ``model_version`` in ``content_embeddings`` differs from the one the current SID
version was trained on (or there is no current version), fit a new version, encode every item with
it, report how many items' SID prefixes changed, and switch the pointer atomically (the old version
stays in ``item_sids`` and the artifact store for rollback). Otherwise encode only new items with the
current version. Two cases also keep the current version and only encode new items with it, saying
why in the summary: a pointer a rollback holds (``held``), and a new model whose embeddings do not yet
cover ``refresh.min_rollout_coverage`` of the items the current version covers
(``rollout_incomplete``: a refit then would drop the others' SIDs). See :mod:`sidlib.steps.refresh`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidlib.artifacts import ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.results import Result
from sidlib.spark.fused_rows import FUSION_SIGNAL
from sidlib.steps.refresh import RefreshResult, refresh_signal


@dataclass(frozen=True)
class RefreshSummary(Result):
    """One refresh run: the ``content_embeddings`` version it read, and what it did per signal."""

    content_embeddings_version: int | None
    signals: list[RefreshResult]


def run(cfg: SidlibConfig, tables: Any) -> RefreshSummary:
    source_version = tables.version("content_embeddings")
    store = ArtifactStore(cfg.artifacts.root)
    units = [FUSION_SIGNAL] if cfg.fit.quantizer == FUSION_SIGNAL else cfg.fit.signals
    return RefreshSummary(content_embeddings_version=source_version, signals=[
        refresh_signal(tables, store, signal, fit=cfg.fit, quality=cfg.data_quality, lock_wait_s=cfg.encode.lock_wait_s,
                       min_rollout_coverage=cfg.refresh.min_rollout_coverage, source_version=source_version)
        for signal in units])
