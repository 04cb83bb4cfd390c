"""refresh: the recurring retrain, safe to run on a schedule.

For each signal in ``fit.signals``: if the newest upstream ``model_version`` in ``content_embeddings``
differs from the one the current SID version was trained on (or there is no current version), fit a
new version, encode every item with it, report how many items' SID prefixes changed, and switch the
pointer atomically (the old version stays in ``item_sids`` and the artifact store for rollback).
Otherwise encode only new items with the current version. Two cases also keep the current version and
only encode new items with it, saying why in the summary: a pointer a rollback holds (``held``), and
a new model whose embeddings do not yet cover ``refresh.min_rollout_coverage`` of the items the
current version covers (``rollout_incomplete``: a refit then would drop the others' SIDs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from sidlib.artifacts import ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.jobs import fit_quantizer
from sidlib.jobs.encode_items import encode_signal
from sidlib.spark import pointer
from sidlib.spark.tables import sid_version_is
from sidlib.spark.embeddings import latest_model_version
from sidlib.spark.fused_rows import FUSION_SIGNAL, composite_model_version

log = logging.getLogger(__name__)


def prefix_changes(tables: Any, old: int, new: int) -> dict[str, int]:
    """Items encoded by both versions, and how many changed their first code / whole SID."""
    sids = tables.read_unpinned("item_sids")
    a = sids.where(sid_version_is(old)).selectExpr("item_id", "ngrams[0] AS p_old", "sid AS s_old")
    b = sids.where(sid_version_is(new)).selectExpr("item_id", "ngrams[0] AS p_new", "sid AS s_new")
    row = a.join(b, "item_id").selectExpr(
        "count(*) AS compared", "sum(CASE WHEN p_old != p_new THEN 1 ELSE 0 END) AS prefix_changed",
        "sum(CASE WHEN s_old != s_new THEN 1 ELSE 0 END) AS sid_changed").collect()[0]
    return {k: int(row[k] or 0) for k in ("compared", "prefix_changed", "sid_changed")}


def rollout_coverage(tables: Any, signal: str, covered_by: int, model_version: str, trained_on: str,
                     source_version: int | None) -> dict[str, int]:
    """Of the items SID version ``covered_by`` covers, how many have an embedding of ``signal`` from
    ``model_version``. A fused signal counts each input signal whose model changed since ``trained_on``
    on its own and reports the least covered one."""
    import pyspark.sql.functions as F

    content = tables.read("content_embeddings", version=source_version).frame
    if signal == FUSION_SIGNAL:
        new, old = json.loads(model_version), json.loads(trained_on)
        changed = {name: version for name, version in new.items() if old.get(name) != version} or new
    else:
        changed = {signal: model_version}
    items = tables.read_unpinned("item_sids").where(F.col("sid_version") == int(covered_by)).select("item_id")
    counts = []
    for name, version in changed.items():
        ready = (content.where((F.col("signal") == name) & (F.col("model_version") == version)
                               & F.col("embedding").isNotNull()).select("item_id").distinct().withColumn("_ready", F.lit(1)))
        row = items.join(ready, "item_id", "left").agg(F.count("*").alias("items"),
                                                       F.count("_ready").alias("ready")).collect()[0]
        counts.append({"items": int(row["items"]), "with_new_model": int(row["ready"] or 0)})
    return min(counts, key=lambda c: c["with_new_model"] / max(c["items"], 1))


def keep_current(cfg: SidlibConfig, tables: Any, signal: str, current: pointer.Pointer, action: str,
                 source_version: int | None, **details: Any) -> dict[str, Any]:
    """Encode new items with the current version; the pointer stays."""
    artifact = ArtifactStore(cfg.artifacts.root).get(current.sid_version)
    encoded = encode_signal(cfg, tables, artifact, "incremental", source_version=source_version)
    return {"signal": signal, "action": action, "sid_version": current.sid_version, **details, "encode": encoded}


def refresh_signal(cfg: SidlibConfig, tables: Any, signal: str, source_version: int | None) -> dict[str, Any]:
    store = ArtifactStore(cfg.artifacts.root)
    current = pointer.current(tables, signal)
    upstream = upstream_model_version(cfg, tables, signal, source_version)
    trained_on = store.get(current.sid_version).model_version if current else None
    if current is not None and trained_on == upstream:
        log.info("%s: upstream model %s unchanged; incremental encode with v%d", signal, upstream, current.sid_version)
        return keep_current(cfg, tables, signal, current, "incremental", source_version)
    if current is not None and current.held:
        log.warning("%s: sid_pointer is held at v%d by a rollback; not refitting on upstream model %s "
                    "(release it with rollback.signal=%s rollback.release=true)", signal, current.sid_version,
                    upstream, signal)
        return keep_current(cfg, tables, signal, current, "held", source_version, model_version=upstream)
    if current is not None:
        coverage = rollout_coverage(tables, signal, current.sid_version, upstream, trained_on, source_version)
        if coverage["with_new_model"] < cfg.refresh.min_rollout_coverage * coverage["items"]:
            log.warning("%s: upstream model %s covers %d of the %d items v%d covers (refresh.min_rollout_coverage "
                        "%s); keeping v%d until the rollout completes", signal, upstream, coverage["with_new_model"],
                        coverage["items"], current.sid_version, cfg.refresh.min_rollout_coverage, current.sid_version)
            return keep_current(cfg, tables, signal, current, "rollout_incomplete", source_version,
                                model_version=upstream, rollout=coverage)
    log.info("%s: upstream model %s (current SID trained on %s): fitting a new version", signal, upstream, trained_on)
    signals = cfg.fit.signals if signal == FUSION_SIGNAL else [signal]
    fit_cfg = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, signals=signals, model_version=upstream))
    fitted = fit_quantizer.run(fit_cfg, tables, source_version=source_version)["artifacts"][0]
    new = store.get(fitted["version"])
    encoded = encode_signal(cfg, tables, new, "full", source_version=source_version)
    changes = prefix_changes(tables, current.sid_version, new.version) if current else None
    try:
        pointer.switch(tables, signal, new.version, upstream, expected=current.sid_version if current else None)
        action = "refit"
    except pointer.PointerConflict as exc:
        log.warning("%s", exc)
        action = "lost_race"
    return {"signal": signal, "action": action, "sid_version": new.version,
            "previous_version": current.sid_version if current else None, "model_version": upstream,
            "metrics": fitted["metrics"], "encode": encoded, "changes": changes}


def upstream_model_version(cfg: SidlibConfig, tables: Any, signal: str, source_version: int | None) -> str:
    """The newest upstream model version of ``signal`` (for ``fusion``: of each input signal, composed)."""
    content = tables.read("content_embeddings", version=source_version).frame
    if signal != FUSION_SIGNAL:
        return latest_model_version(content, signal)
    return composite_model_version({s: latest_model_version(content, s) for s in cfg.fit.signals})


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    """Refresh each configured signal, or the one fused SID when ``fit.quantizer`` is ``fusion``."""
    source_version = tables.version("content_embeddings")
    units = [FUSION_SIGNAL] if cfg.fit.quantizer == FUSION_SIGNAL else cfg.fit.signals
    return {"job": "refresh", "content_embeddings_version": source_version,
            "signals": [refresh_signal(cfg, tables, s, source_version) for s in units]}
