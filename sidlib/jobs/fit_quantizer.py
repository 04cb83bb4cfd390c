"""fit_quantizer: fit the configured quantizer for each signal of ``fit.signals`` (or the one fused
quantizer, ``fit.quantizer: fusion``) and publish each as a new, never-overwritten artifact version.

Reads ``content_embeddings`` at one pinned version (recorded in the manifest), validates rows, holds out
``fit.holdout_fraction`` of items for the manifest's metrics, then fits: EM quantizers distributed
over the executors, neural ones one Spark task per signal in parallel (:mod:`sidlib.steps.fit`).
With ``mlflow.enabled``, each version is also an MLflow run and a registered model version."""

from __future__ import annotations

import dataclasses
from typing import Any

from sidlib.artifacts import ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.steps.fit import FitOutcome, fit_artifacts
from sidlib.steps.track import log_fits, tracking_for


def run(cfg: SidlibConfig, tables: Any) -> FitOutcome:
    tracker = tracking_for(cfg)
    store = ArtifactStore(cfg.artifacts.root)
    outcome = fit_artifacts(tables, store, cfg.fit, cfg.data_quality)
    return dataclasses.replace(outcome, mlflow=log_fits(tracker, store, [a.version for a in outcome.artifacts]))
