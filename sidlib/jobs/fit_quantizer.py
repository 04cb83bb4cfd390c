"""fit_quantizer: fit the configured quantizer for each signal of ``fit.signals`` (or the one fused
quantizer, ``fit.quantizer: fusion``) and publish each as a new, never-overwritten artifact version.

Reads ``content_embeddings`` at one pinned version (recorded in the manifest), validates rows, holds out
``fit.holdout_fraction`` of items for the manifest's metrics, then fits: EM quantizers distributed
over the executors, neural ones one Spark task per signal in parallel (:mod:`sidlib.steps.fit`)."""

from __future__ import annotations

from typing import Any

from sidlib.artifacts import ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.steps.fit import FitOutcome, fit_artifacts


def run(cfg: SidlibConfig, tables: Any) -> FitOutcome:
    return fit_artifacts(tables, ArtifactStore(cfg.artifacts.root), cfg.fit, cfg.data_quality)
