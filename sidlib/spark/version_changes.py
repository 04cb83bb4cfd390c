"""What a new SID version would change, as queries on the tables ``refresh`` decides from: the newest
upstream model of each signal, how far a new model's rollout has got, and how many items' SIDs a
new version changed."""

from __future__ import annotations

import json
from typing import Any, Sequence

from sidlib.spark.embeddings import latest_model_version
from sidlib.spark.fused_rows import FUSION_SIGNAL, composite_model_version
from sidlib.spark.tables import sid_version_is


def upstream_model_version(tables: Any, signal: str, fused_signals: Sequence[str], source_version: int | None) -> str:
    """The newest upstream model version of ``signal`` (for ``fusion``: of each of ``fused_signals``,
    composed) at ``content_embeddings`` version ``source_version``."""
    content = tables.read("content_embeddings", version=source_version).frame
    if signal != FUSION_SIGNAL:
        return latest_model_version(content, signal)
    return composite_model_version({s: latest_model_version(content, s) for s in fused_signals})


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
    items = tables.read_unpinned("item_sids").where(sid_version_is(covered_by)).select("item_id")
    counts = []
    for name, version in changed.items():
        ready = (content.where((F.col("signal") == name) & (F.col("model_version") == version)
                               & F.col("embedding").isNotNull()).select("item_id").distinct().withColumn("_ready", F.lit(1)))
        row = items.join(ready, "item_id", "left").agg(F.count("*").alias("items"),
                                                       F.count("_ready").alias("ready")).collect()[0]
        counts.append({"items": int(row["items"]), "with_new_model": int(row["ready"] or 0)})
    return min(counts, key=lambda c: c["with_new_model"] / max(c["items"], 1))


def encoded_items(tables: Any, version: int) -> int:
    """How many items SID version ``version`` has encoded so far (its fit, then incremental runs)."""
    return int(tables.read_unpinned("item_sids").where(sid_version_is(version)).count())
