"""The fused SID's input rows: all of an item's signals in one row, the layout
:mod:`sidlib.quantizers.fusion` expects, assembled from ``content_embeddings``."""

from __future__ import annotations

import json

from sidlib.config import DataQualityConfig
from sidlib.spark.embeddings import SignalData, read_signal
from sidlib.spark.tables import Tables

FUSION_SIGNAL = "fusion"


def composite_model_version(versions: dict[str, str]) -> str:
    """One model version for a fused SID (JSON of each signal's version, in signal order): it changes
    when any input signal's model changes, and :func:`json.loads` gives the parts back."""
    return json.dumps(versions)


def read_fused(
    tables: Tables,
    signals: list[str],
    *,
    quality: DataQualityConfig,
    job: str,
    model_versions: dict[str, str] | None = None,
    source_version: int | None = None,
) -> tuple[SignalData, dict[str, int]]:
    """All of an item's signals as one row for the fusion quantizer: the signals' embeddings
    concatenated in ``signals`` order (a missing signal as zeros), then one presence flag per signal
    (1.0 / 0.0). Returns the fused rows and each signal's dimension (the layout
    ``sidlib.quantizers.fusion`` expects). Every signal is validated on its own first."""
    import pyspark.sql.functions as F

    parts = {s: read_signal(tables, s, model_version=(model_versions or {}).get(s), quality=quality, job=job,
                            source_version=source_version) for s in signals}
    ids = None
    for part in parts.values():
        ids = part.frame.select("item_id") if ids is None else ids.unionByName(part.frame.select("item_id"))
    joined = ids.distinct()  # type: ignore[union-attr]
    for i, part in enumerate(parts.values()):
        joined = joined.join(part.frame.withColumnRenamed("embedding", f"_e{i}"), "item_id", "left")
    filled = [F.coalesce(F.col(f"_e{i}"), F.array_repeat(F.lit(0.0).cast("float"), p.dim)) for i, p in enumerate(parts.values())]
    flags = F.array(*[F.col(f"_e{i}").isNotNull().cast("float") for i in range(len(parts))])
    frame = joined.select("item_id", F.concat(*filled, flags).alias("embedding"))
    dims = {s: p.dim for s, p in parts.items()}
    fused = SignalData(
        frame=frame, signal=FUSION_SIGNAL,
        model_version=composite_model_version({s: p.model_version for s, p in parts.items()}),
        dim=sum(dims.values()) + len(dims), source_version=next(iter(parts.values())).source_version,
        rows=frame.count(), rejected={f"{s}: {r}": n for s, p in parts.items() for r, n in p.rejected.items()},
    )
    return fused, dims
