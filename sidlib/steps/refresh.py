"""One signal's recurring retrain: :func:`refresh_signal`.

If the newest upstream ``model_version`` differs from the one the current SID version was trained on
(or there is no current version), fit a new version, encode every item with it, count how many items'
SID prefixes changed, and switch the pointer (the old version stays for rollback). Otherwise encode
only new items with the current version. ``refresh.refit`` (or, with ``refresh.refit_new_items``,
enough items new since the current version's fit) refits on an unchanged model too, starting
from the current version's quantizer (``refresh.warm_start``) so that most items keep their SIDs. A
refit for a new model cannot start from the old parameters; with ``refresh.align`` its codes are
relabelled to agree with the current version's instead (:mod:`sidlib.alignment`). Three
cases keep the current version: a pointer a rollback holds (``held``), a new model whose embeddings
do not yet cover ``min_rollout_coverage`` of the items the current version covers
(``rollout_incomplete``), and a refit that fails the quality gate (``gated``,
:mod:`sidlib.steps.quality_gate`; its version stays in the store and ``item_sids`` for inspection)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from sidlib.artifacts import ArtifactStore
from sidlib.config import DataQualityConfig, EncodeConfig, FitConfig, RefreshConfig
from sidlib.results import Result
from sidlib.spark import pointer
from sidlib.spark.fused_rows import FUSION_SIGNAL
from sidlib.spark.version_changes import encoded_items, prefix_changes, rollout_coverage, upstream_model_version
from sidlib.steps.encode import EncodeResult, encode_version
from sidlib.steps.fit import fit_artifacts
from sidlib.steps.quality_gate import GateCheck, failed, gate_checks
from sidlib.steps.report import report_version
from sidlib.steps.switch import switch_pointer

log = logging.getLogger(__name__)

Action = Literal["incremental", "held", "rollout_incomplete", "gated", "refit", "lost_race"]


@dataclass(frozen=True)
class RefreshResult(Result):
    """What a refresh did for one signal. ``sid_version`` is the version it encoded with (after
    ``refit`` the new current one; after ``lost_race`` the version it fitted, which another run's
    switch left unused; after ``gated`` the current one, the fitted one being ``candidate_version``,
    encoded as ``candidate_encode``).
    ``metrics``, ``changes``, ``gate`` (every check, passed or not) and ``report`` (the new version's
    report, :mod:`sidlib.version_report`) are set after a fit, ``rollout`` when a rollout held the
    switch back."""

    signal: str
    action: Action
    sid_version: int
    model_version: str
    encode: EncodeResult
    previous_version: int | None = None
    metrics: dict[str, float] | None = None
    changes: dict[str, int] | None = None
    rollout: dict[str, int] | None = None
    candidate_version: int | None = None
    candidate_encode: EncodeResult | None = None
    gate: list[GateCheck] | None = None
    report: dict[str, Any] | None = None
    new_items: dict[str, float] | None = None


def new_items_since_fit(tables: Any, artifact: Any, version: int) -> dict[str, float]:
    """The items SID version ``version`` encodes that its fit did not see (its manifest's valid
    source rows), and their share."""
    encoded = encoded_items(tables, version)
    fitted = int(artifact.manifest.get("source", {}).get("valid_rows", encoded))
    new = max(0, encoded - fitted)
    return {"encoded": encoded, "fitted_on": fitted, "new": new, "share": new / encoded if encoded else 0.0}


def refresh_signal(tables: Any, store: ArtifactStore, signal: str, *, fit: FitConfig, quality: DataQualityConfig,
                   encoding: EncodeConfig, policy: RefreshConfig, source_version: int | None) -> RefreshResult:
    """Refresh ``signal`` (``fusion``: the one fused SID of ``fit.signals``) from ``content_embeddings``
    version ``source_version``; ``fit`` is how a new version is fitted, ``encoding`` how its items are
    encoded (the lock wait, ``encode.unique``), ``policy`` when it may replace the current one."""
    options = {"lock_wait_s": encoding.lock_wait_s, "unique_cap": encoding.cap_if_unique}
    current = pointer.current(tables, signal)
    upstream = upstream_model_version(tables, signal, fit.signals, source_version)
    current_artifact = store.get(current.sid_version) if current else None
    trained_on = current_artifact.model_version if current_artifact else None

    def keep_current(action: Action, **details: Any) -> RefreshResult:
        assert current is not None and current_artifact is not None
        encoded = encode_version(tables, store, current_artifact, "incremental", quality=quality,
                                 source_version=source_version, **options)
        return RefreshResult(signal=signal, action=action, sid_version=current.sid_version, model_version=upstream,
                             encode=encoded, **details)

    same_model = current is not None and trained_on == upstream
    new_items = new_items_since_fit(tables, current_artifact, current.sid_version) \
        if same_model and policy.refit_new_items is not None else None
    due = policy.refit or (new_items is not None and new_items["share"] >= policy.refit_new_items)
    if same_model and not due:
        log.info("%s: upstream model %s unchanged; incremental encode with v%d", signal, upstream, current.sid_version)
        return keep_current("incremental", new_items=new_items)
    if new_items is not None and due:
        log.info("%s: %d of the %d items v%d encodes are new since its fit (refresh.refit_new_items %s): refitting",
                 signal, new_items["new"], new_items["encoded"], current.sid_version, policy.refit_new_items)
    if current is not None and current.held:
        log.warning("%s: sid_pointer is held at v%d by a rollback; not refitting on upstream model %s "
                    "(release it with rollback.signal=%s rollback.release=true)", signal, current.sid_version,
                    upstream, signal)
        return keep_current("held")
    if current is not None and not same_model:
        coverage = rollout_coverage(tables, signal, current.sid_version, upstream, trained_on, source_version)
        if coverage["with_new_model"] < policy.min_rollout_coverage * coverage["items"]:
            log.warning("%s: upstream model %s covers %d of the %d items v%d covers (refresh.min_rollout_coverage "
                        "%s); keeping v%d until the rollout completes", signal, upstream, coverage["with_new_model"],
                        coverage["items"], current.sid_version, policy.min_rollout_coverage, current.sid_version)
            return keep_current("rollout_incomplete", rollout=coverage)
    log.info("%s: upstream model %s (current SID trained on %s): fitting a new version", signal, upstream, trained_on)
    signals = fit.signals if signal == FUSION_SIGNAL else [signal]
    versions = json.loads(upstream) if signal == FUSION_SIGNAL else {signal: upstream}
    warm = {signal: current_artifact} if same_model and policy.warm_start and current_artifact else None
    align_to = {signal: current_artifact} if current_artifact is not None and not same_model and policy.align else None
    fitted = fit_artifacts(tables, store, fit, quality, signals=signals, model_versions=versions,
                           source_version=source_version, warm_start=warm, align_to=align_to).artifacts[0]
    warm_from = fitted.artifact.manifest.get("warm_start_from")
    stable = (warm_from, policy.stability_margin) if current is not None and warm_from == current.sid_version else None
    encoded = encode_version(tables, store, fitted.artifact, "full", quality=quality, source_version=source_version,
                             stable_from=stable, **options)
    if current is None:
        report = report_version(tables, store, fitted.artifact)
        switched = switch_pointer(tables, signal, fitted.version, upstream, expected=None)
        return RefreshResult(signal=signal, action="refit" if switched == "switched" else "lost_race",
                             sid_version=fitted.version, model_version=upstream, encode=encoded, metrics=fitted.metrics,
                             report=report)
    assert current_artifact is not None
    changes = prefix_changes(tables, current.sid_version, fitted.version)
    checks = gate_checks(current_artifact.manifest.get("metrics", {}), fitted.metrics, changes,
                         same_model=same_model, limits=policy)
    details: dict[str, Any] = {"metrics": fitted.metrics, "changes": changes, "gate": checks,
                               "previous_version": current.sid_version, "new_items": new_items,
                               "report": report_version(tables, store, fitted.artifact, previous=current.sid_version,
                                                        changes=changes)}
    if failed(checks) and not policy.force_switch:
        log.warning("%s: v%d fails the quality gate against v%d (%s); the pointer stays (refresh.force_switch=true "
                    "switches anyway)", signal, fitted.version, current.sid_version,
                    "; ".join(f"{c.name} {c.candidate:.4g} not {c.direction} {c.bound:.4g}" for c in failed(checks)))
        return keep_current("gated", candidate_version=fitted.version, candidate_encode=encoded, **details)
    switched = switch_pointer(tables, signal, fitted.version, upstream, expected=current.sid_version)
    return RefreshResult(signal=signal, action="refit" if switched == "switched" else "lost_race",
                         sid_version=fitted.version, model_version=upstream, encode=encoded, **details)
