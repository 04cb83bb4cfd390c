"""Fit the configured quantizer for signals of ``content_embeddings`` and publish each as a new,
never-overwritten artifact version: :func:`fit_artifacts`."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from sidlib.alignment import align
from sidlib.artifacts import Artifact, ArtifactStore
from sidlib.config import DataQualityConfig, FitConfig, to_dict
from sidlib.metrics import reconstruction_report, signal_report
from sidlib.quantizers import Quantizer, QuantizerSpec
from sidlib.results import INTERNAL, Result
from sidlib.spark.embeddings import SignalData, read_signal
from sidlib.spark.fit import build_quantizer, fit_em, neural_training_sample, ordered_rows, train_neural_distributed
from sidlib.spark.fused_rows import FUSION_SIGNAL, read_fused
from sidlib.spark.local_values import shared_items
from sidlib.spark.sampling import holdout_predicate

log = logging.getLogger(__name__)

#: Held-out rows collected to the driver for the artifact's metrics (bounded, whatever the table size).
MAX_EVAL_ROWS = 20_000
#: Items both versions encode that an alignment matches on: ~200 per code of a 256-code level.
MAX_ALIGN_ITEMS = 50_000


@dataclass(frozen=True)
class FittedArtifact(Result):
    """One published artifact version: what it was fitted for, and its held-out metrics."""

    version: int
    signal: str
    model_version: str
    path: str
    metrics: dict[str, float]
    artifact: Artifact = field(metadata=INTERNAL, repr=False, compare=False)


@dataclass(frozen=True)
class FitOutcome(Result):
    """The artifacts one fit published (one per signal, or one fused), and the rows it set aside."""

    artifacts: list[FittedArtifact]
    rejected: dict[str, dict[str, int]]
    #: Per artifact, its MLflow run and model version (``mlflow.enabled``; set by the job).
    mlflow: list[dict[str, Any]] | None = None


def quantizer_spec(fit: FitConfig) -> QuantizerSpec:
    """The quantizer ``fit`` configures. ``fit.vae`` follows the :class:`QuantizerSpec` rule (unset: the
    quantizer's default); ``fit.vae_params`` apply whenever the VQ-VAE is used, and are ignored
    otherwise (``fit.vae: false``, or unset for a quantizer that does not default to it)."""
    spec = QuantizerSpec(fit.quantizer, fit.bits, fit.params, fit.vae, fit.seed, fit.device)
    return dataclasses.replace(spec, vae=dict(fit.vae_params) if spec.uses_vae else False)


def read_inputs(tables: Any, fit: FitConfig, quality: DataQualityConfig,
                source_version: int | None) -> tuple[dict[str, SignalData], dict[str, Any]]:
    """The rows each quantizer trains on (``fit.signals``, each from its ``fit.model_versions`` entry):
    one entry per signal, or one ``fusion`` entry whose rows hold all signals (then also the fusion
    layout parameters the quantizer needs)."""
    job = "fit_quantizer"
    if fit.quantizer != FUSION_SIGNAL:
        return {s: read_signal(tables, s, model_version=fit.model_versions.get(s), quality=quality, job=job,
                               source_version=source_version) for s in fit.signals}, {}
    fused, dims = read_fused(tables, list(fit.signals), quality=quality, job=job,
                             model_versions=dict(fit.model_versions) or None, source_version=source_version)
    layout = [{"name": s, "dim": d, "kind": fit.signal_kinds.get(s, "embedding"),
               "weight": fit.signal_weights.get(s, 1.0)} for s, d in dims.items()]
    return {FUSION_SIGNAL: fused}, {"signals": layout}


def fit_artifacts(tables: Any, store: ArtifactStore, fit: FitConfig, quality: DataQualityConfig, *,
                  signals: Sequence[str] | None = None, model_versions: Mapping[str, str] | None = None,
                  source_version: int | None = None, warm_start: Mapping[str, Artifact] | None = None,
                  align_to: Mapping[str, Artifact] | None = None) -> FitOutcome:
    """Fit ``fit.quantizer`` on ``signals`` (default ``fit.signals``) at ``content_embeddings`` version
    ``source_version`` (default: the current one, pinned for the whole fit and recorded in each
    manifest), each signal's rows from its ``model_versions`` entry (default: its newest model).

    Validates rows, holds out ``fit.holdout_fraction`` of items (by a hash of item_id) for the
    manifest's metrics, then fits: EM quantizers distributed over the executors (or in process when
    the set fits ``fit.driver_fit_max_mb``), neural ones one Spark task per signal in parallel. A signal
    in ``warm_start`` starts from that artifact's quantizer (:meth:`Quantizer.warm_start`) when its
    class and layout match (otherwise it fits from scratch, with a warning); the manifest records
    ``warm_start_from``. A signal in ``align_to`` has its codes relabelled, before it is published, to
    agree with that artifact's ``item_sids`` version on the items both encode (:func:`aligned`); the
    manifest records ``alignment``."""
    store.check_writable()
    source_version = tables.version("content_embeddings") if source_version is None else source_version
    fit = dataclasses.replace(  # the fit as run: what read_inputs reads and the manifest records
        fit, signals=list(fit.signals if signals is None else signals),
        model_versions=dict(fit.model_versions if model_versions is None else model_versions))
    data, layout = read_inputs(tables, fit, quality, source_version)
    spec = quantizer_spec(fit)
    spec = dataclasses.replace(spec, params={**spec.params, **layout})
    # a spec that cannot be built fails here, before any training; the EM fits below start from these
    built = {signal: build_quantizer(spec, sd.dim) for signal, sd in data.items()}
    holdout = holdout_predicate(fit.seed, fit.holdout_fraction)
    starts = warm_starts(built, warm_start or {})
    fitted: dict[str, tuple[Quantizer, int, float]] = {}
    if spec.fits_by_em:  # EM on the raw embedding fits distributed; everything with gradients trains in a task
        for signal, sd in data.items():
            start = time.perf_counter()
            quantizer = built[signal]
            if signal in starts:
                quantizer.warm_start(starts[signal][1])
            quantizer = quantizer.to_preferred_device()
            rows = fit_em(quantizer, sd.frame, holdout=holdout, sample_fraction=fit.em_sample_fraction,
                          sample_rows=fit.sample_rows, seed=fit.seed, driver_fit_max_mb=fit.driver_fit_max_mb,
                          stat_partitions=fit.stat_partitions)
            fitted[signal] = (quantizer.cpu(), rows, time.perf_counter() - start)
    else:
        sample = neural_training_sample({s: sd.frame for s, sd in data.items()}, holdout=holdout,
                                        sample_rows=fit.sample_rows, seed=fit.seed)
        fitted = train_neural_distributed(sample, spec, {s: q for s, (_, q) in starts.items()})
    alignments = {s: aligned(tables, data[s], fitted[s][0], a) for s, a in (align_to or {}).items() if s in fitted}
    artifacts = [publish(store, fit, data[s], quantizer, rows, seconds, holdout,
                         warm_from=starts[s][0] if s in starts else None, alignment=alignments.get(s))
                 for s, (quantizer, rows, seconds) in sorted(fitted.items())]
    return FitOutcome(artifacts=artifacts, rejected={s: d.rejected for s, d in data.items() if d.rejected})


def warm_starts(built: Mapping[str, Quantizer], artifacts: Mapping[str, Artifact]) -> dict[str, tuple[int, Quantizer]]:
    """Per signal of ``built`` in ``artifacts``: the artifact version and its quantizer to start from,
    for the signals whose quantizer can start from it."""
    starts = {}
    for signal, artifact in artifacts.items():
        if signal not in built:
            continue
        previous = artifact.load_quantizer()
        reason = built[signal].warm_start_refusal(previous)
        if reason is None:
            starts[signal] = (artifact.version, previous)
        else:
            log.warning("%s: fitting from scratch, not from v%d (cannot warm-start %s)", signal, artifact.version, reason)
    return starts


def aligned(tables: Any, sd: SignalData, quantizer: Quantizer, previous: Artifact) -> dict[str, Any]:
    """Relabel ``quantizer``'s codes to agree with ``previous``'s ``item_sids`` version on (a sample of
    up to :data:`MAX_ALIGN_ITEMS` of) the items both encode (:func:`sidlib.alignment.align`); returns
    the manifest's ``alignment`` record, which says why when nothing was aligned."""
    version = previous.version
    record = {"to_version": version}
    layout = [int(c) for c in previous.manifest["cardinalities"]]
    if layout != quantizer.cardinalities:  # codes of another layout cannot be matched position by position
        return {**record, "skipped": f"v{version} has cardinalities {layout}, the new version "
                                     f"{quantizer.cardinalities}"}
    embeddings, codes = shared_items(tables, sd.frame, version, MAX_ALIGN_ITEMS)
    if not len(codes):
        return {**record, "skipped": "no item is in both versions"}
    report = align(quantizer, embeddings, codes)
    log.info("%s: aligned to v%d on %d items: first code kept %.1f%% -> %.1f%%, full SID %.1f%% -> %.1f%%",
             sd.signal, version, report["items"], 100 * report["before"]["first_code"],
             100 * report["after"]["first_code"], 100 * report["before"]["full_sid"], 100 * report["after"]["full_sid"])
    return {**record, **report}


def publish(store: ArtifactStore, fit: FitConfig, sd: SignalData, quantizer: Quantizer, rows: int,
            seconds: float, holdout: str, *, warm_from: int | None = None,
            alignment: dict[str, Any] | None = None) -> FittedArtifact:
    """Score ``quantizer`` on the held-out rows and publish it with its manifest."""
    eval_rows = ordered_rows(sd.frame, MAX_EVAL_ROWS, f"eval-{fit.seed}", where=holdout)
    metrics = reconstruction_report(quantizer, eval_rows, seed=fit.seed) if len(eval_rows) > 1 else {}
    if sd.signal == FUSION_SIGNAL and len(eval_rows):
        # the fused row mixes signals of different kinds: judge each signal on its own
        metrics.update(signal_report(quantizer.layout, eval_rows, quantizer.decode(quantizer.encode(eval_rows))))
    metrics.update(quantizer.extra_metrics())
    log.info("%s on %s: %d train rows in %.1fs; held-out cosine loss %s", fit.quantizer, sd.signal, rows,
             seconds, {k: round(v, 4) for k, v in metrics.items() if k.endswith("cosine_loss")})
    recorded = fit if sd.signal == FUSION_SIGNAL else dataclasses.replace(fit, signals=[sd.signal])
    artifact = store.publish(quantizer, {
        "signal": sd.signal,
        "model_version": sd.model_version,
        "source": {"table": "content_embeddings", "version": sd.source_version, "valid_rows": sd.rows,
                   "rejected": sd.rejected},
        "fit": to_dict(recorded),
        "train_rows": rows,
        "holdout_rows": int(len(eval_rows)),
        "fit_seconds": round(seconds, 2),
        "warm_start_from": warm_from,
        "alignment": alignment,
        "metrics": metrics,
    })
    log.info("published artifact v%d for %s at %s", artifact.version, sd.signal, artifact.location)
    return FittedArtifact(version=artifact.version, signal=artifact.signal, model_version=artifact.model_version,
                          path=artifact.location, metrics=artifact.manifest["metrics"], artifact=artifact)
