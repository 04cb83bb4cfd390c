"""fit_quantizer: fit the configured quantizer for each configured signal and publish it as a new,
never-overwritten artifact version.

Reads ``content_embeddings`` at one pinned version (recorded in the manifest), validates rows, holds out
``fit.holdout_fraction`` of items (by a hash of item_id) for the manifest's metrics, then fits:
EM quantizers distributed over the executors, neural ones one Spark task per signal in parallel.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

from sidlib.artifacts import Artifact, ArtifactStore
from sidlib.config import FitConfig, SidlibConfig, to_dict
from sidlib.metrics import reconstruction_report, signal_report
from sidlib.quantizers import QuantizerSpec
from sidlib.spark.embeddings import SignalData, read_signal
from sidlib.spark.fused_rows import FUSION_SIGNAL, read_fused
from sidlib.spark.sampling import hash_fraction
from sidlib.spark.fit import (build_quantizer, collect_training_rows, fit_em_distributed, fit_em_in_process,
                              ordered_rows, train_neural_distributed)

log = logging.getLogger(__name__)

#: Held-out rows collected to the driver for the artifact's metrics (bounded, whatever the table size).
MAX_EVAL_ROWS = 20_000


def quantizer_spec(fit: FitConfig) -> QuantizerSpec:
    """The quantizer ``fit`` configures. ``fit.vae`` follows the :class:`QuantizerSpec` rule (unset: the
    quantizer's default); ``fit.vae_params`` apply whenever the VQ-VAE is used, and are ignored
    otherwise (``fit.vae: false``, or unset for a quantizer that does not default to it)."""
    spec = QuantizerSpec(fit.quantizer, fit.bits, fit.params, fit.vae, fit.seed, fit.device)
    return dataclasses.replace(spec, vae=dict(fit.vae_params) if spec.uses_vae else False)


def split_expr(cfg: SidlibConfig) -> str:
    """SQL predicate that is true for held-out items."""
    return f"{hash_fraction('item_id', f'holdout-{cfg.fit.seed}')} < {float(cfg.fit.holdout_fraction)}"


def fits_driver(rows: int, dim: int, budget_mb: int) -> bool:
    """Whether an EM training set of ``rows`` x ``dim`` float32 fits ``fit.driver_fit_max_mb``."""
    return rows * dim * 4 <= budget_mb << 20


def is_fusion(cfg: SidlibConfig) -> bool:
    return cfg.fit.quantizer == FUSION_SIGNAL


def read_inputs(cfg: SidlibConfig, tables: Any, source_version: int | None) -> tuple[dict[str, SignalData], dict[str, Any]]:
    """The rows each quantizer trains on: one entry per signal, or one ``fusion`` entry whose rows hold
    all signals (then also the fusion layout parameters the quantizer needs)."""
    quality, job = cfg.data_quality, "fit_quantizer"
    if not is_fusion(cfg):
        return {s: read_signal(tables, s, model_version=cfg.fit.model_version, quality=quality, job=job,
                               source_version=source_version) for s in cfg.fit.signals}, {}
    versions = json.loads(cfg.fit.model_version) if cfg.fit.model_version else None
    fused, dims = read_fused(tables, cfg.fit.signals, quality=quality, job=job, model_versions=versions,
                             source_version=source_version)
    layout = [{"name": s, "dim": d, "kind": cfg.fit.signal_kinds.get(s, "embedding"),
               "weight": cfg.fit.signal_weights.get(s, 1.0)} for s, d in dims.items()]
    return {FUSION_SIGNAL: fused}, {"signals": layout}


def run(cfg: SidlibConfig, tables: Any, *, source_version: int | None = None) -> dict[str, Any]:
    store = ArtifactStore(cfg.artifacts.root)
    store.check_writable()
    source_version = tables.version("content_embeddings") if source_version is None else source_version
    data, layout = read_inputs(cfg, tables, source_version)
    spec = quantizer_spec(cfg.fit)
    spec = dataclasses.replace(spec, params={**spec.params, **layout})
    # a spec that cannot be built fails here, before any training; the EM fits below start from these
    built = {signal: build_quantizer(spec, sd.dim) for signal, sd in data.items()}
    holdout = split_expr(cfg)
    fitted: dict[str, tuple[Any, int, float]] = {}
    if spec.fits_by_em:  # EM on the raw embedding fits distributed; everything with gradients trains in a task
        for signal, sd in data.items():
            start = time.perf_counter()
            train = sd.frame.where(f"NOT ({holdout})")
            if cfg.fit.em_sample_fraction is not None:
                train = train.where(f"{hash_fraction('item_id', 'em-sample')} < {float(cfg.fit.em_sample_fraction)}")
            quantizer = built[signal].to_preferred_device()
            rows, salt = train.count(), f"init-{cfg.fit.seed}"
            if fits_driver(rows, sd.dim, cfg.fit.driver_fit_max_mb):
                matrix, sample = collect_training_rows(train, cfg.fit.sample_rows, salt)
                fit_em_in_process(quantizer, matrix, sample)
            else:
                sample = ordered_rows(train, cfg.fit.sample_rows, salt)
                fit_em_distributed(quantizer, train, sample, partitions=cfg.fit.stat_partitions)
            fitted[signal] = (quantizer.cpu(), rows, time.perf_counter() - start)
    else:
        import pyspark.sql.functions as F
        from pyspark.sql import Window

        frames = [sd.frame.where(f"NOT ({holdout})").withColumn("signal", F.lit(s)) for s, sd in data.items()]
        union = frames[0]
        for other in frames[1:]:
            union = union.unionByName(other)
        order = Window.partitionBy("signal").orderBy(F.expr(hash_fraction("item_id", f"sample-{cfg.fit.seed}")), "item_id")
        sample = union.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") <= cfg.fit.sample_rows).drop("_rank")
        fitted = train_neural_distributed(sample, spec)
    artifacts = [_publish(store, cfg, data[s], quantizer, rows, seconds, holdout)
                 for s, (quantizer, rows, seconds) in sorted(fitted.items())]
    return {
        "job": "fit_quantizer",
        "artifacts": [{"version": a.version, "signal": a.signal, "model_version": a.model_version,
                       "path": str(a.path), "metrics": a.manifest["metrics"]} for a in artifacts],
        "rejected": {s: d.rejected for s, d in data.items() if d.rejected},
    }


def _publish(store: ArtifactStore, cfg: SidlibConfig, sd: SignalData, quantizer: Any, rows: int,
             seconds: float, holdout: str) -> Artifact:
    eval_rows = ordered_rows(sd.frame.where(holdout), MAX_EVAL_ROWS, f"eval-{cfg.fit.seed}")
    metrics = reconstruction_report(quantizer, eval_rows, seed=cfg.fit.seed) if len(eval_rows) > 1 else {}
    if sd.signal == FUSION_SIGNAL and len(eval_rows):
        # the fused row mixes signals of different kinds: judge each signal on its own
        metrics.update(signal_report(quantizer.layout, eval_rows, quantizer.decode(quantizer.encode(eval_rows))))
    metrics.update(quantizer.extra_metrics())
    log.info("%s on %s: %d train rows in %.1fs; held-out cosine loss %s", cfg.fit.quantizer, sd.signal, rows,
             seconds, {k: round(v, 4) for k, v in metrics.items() if k.endswith("cosine_loss")})
    fit_cfg = cfg.fit if sd.signal == FUSION_SIGNAL else dataclasses.replace(cfg.fit, signals=[sd.signal])
    artifact = store.publish(quantizer, {
        "signal": sd.signal,
        "model_version": sd.model_version,
        "source": {"table": "content_embeddings", "version": sd.source_version, "valid_rows": sd.rows,
                   "rejected": sd.rejected},
        "fit": to_dict(fit_cfg),
        "train_rows": rows,
        "holdout_rows": int(len(eval_rows)),
        "fit_seconds": round(seconds, 2),
        "metrics": metrics,
    })
    log.info("published artifact v%d for %s at %s", artifact.version, sd.signal, artifact.path)
    return artifact
