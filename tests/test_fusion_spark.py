"""The fused input layout built on Spark, and fusion SIDs through the fit/encode jobs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from sidlib.artifacts import ArtifactStore
from sidlib.config import DataQualityConfig
from sidlib.jobs import encode_items, fit_quantizer
from sidlib.sid import pack
from sidlib.spark.arrow_lists import to_matrix
from sidlib.spark.fused_rows import FUSION_SIGNAL, read_fused


def test_read_fused_concatenates_signals_with_presence_flags(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    fused, dims = read_fused(tables, ["text", "credits", "genres"], quality=DataQualityConfig(), job="test")
    assert dims == {"text": 384, "credits": 384, "genres": 18}
    assert fused.signal == FUSION_SIGNAL and fused.dim == 384 + 384 + 18 + 3
    assert json.loads(fused.model_version) == {"text": "all-MiniLM-L6-v2", "credits": "all-MiniLM-L6-v2",
                                               "genres": "genres-multihot-v1"}
    got = fused.frame.toPandas().sort_values("item_id").reset_index(drop=True)
    x = to_matrix(got["embedding"])
    raw = tables.read_unpinned("content_embeddings").toPandas()
    by = {s: dict(zip(g["item_id"], g["embedding"])) for s, g in raw.groupby("signal")}
    assert fused.rows == len(got) == 120
    offsets = {"text": 0, "credits": 384, "genres": 768}
    for row, item in enumerate(got["item_id"]):
        for flag, (signal, start) in enumerate(offsets.items()):
            part = x[row, start:start + dims[signal]]
            present = item in by[signal]
            assert x[row, 786 + flag] == float(present)
            np.testing.assert_array_equal(part, by[signal][item] if present else np.zeros(dims[signal], np.float32))
    assert 0 < (x[:, 787] == 0).sum() < 120  # some items lack Wikidata credits and are kept, not dropped


def test_fusion_artifact_fits_and_encodes_through_the_jobs(pipeline) -> None:  # type: ignore[no-untyped-def]
    """quantizer: fusion -> one artifact for signal 'fusion' judged per signal, and encode_items
    writes one SID per item (also items without credits) equal to the in-process codes."""
    cfg, tables = pipeline
    cfg = dataclasses.replace(cfg, fit=dataclasses.replace(
        cfg.fit, quantizer="fusion", bits=12, signals=["text", "credits", "genres"],
        params={"quantizer": "rq_kmeans", "latent_dim": 16, "hidden": [32], "signal_hidden": 32, "epochs": 2}))
    (art,) = fit_quantizer.run(cfg, tables)["artifacts"]
    assert art["signal"] == FUSION_SIGNAL
    assert json.loads(art["model_version"])["genres"] == "genres-multihot-v1"
    metrics = art["metrics"]
    for name in ("text_cosine_loss", "credits_cosine_loss"):
        assert 0 < metrics[name] < 1.5, name
    assert 0 <= metrics["genres_micro_f1"] <= 1
    q = ArtifactStore(cfg.artifacts.root).get(art["version"]).load_quantizer()
    assert [(s.name, s.kind) for s in q.layout.signals] == [("text", "embedding"), ("credits", "embedding"),
                                                             ("genres", "multilabel")]

    summary = encode_items.run(dataclasses.replace(cfg, encode=dataclasses.replace(
        cfg.encode, signal=FUSION_SIGNAL, sid_version=art["version"])), tables)
    assert summary["items_in_version"] == summary["items_encoded"] == 120
    got = (tables.read_unpinned("item_sids").where(f"signal = '{FUSION_SIGNAL}'").toPandas()
           .sort_values("item_id").reset_index(drop=True))
    fused, _ = read_fused(tables, cfg.fit.signals, quality=DataQualityConfig(), job="test")
    rows = fused.frame.toPandas().sort_values("item_id").reset_index(drop=True)
    np.testing.assert_array_equal(got["item_id"], rows["item_id"])
    expected = q.encode(to_matrix(rows["embedding"]))
    np.testing.assert_array_equal(np.stack(got["codes"]), expected)
    np.testing.assert_array_equal(got["sid"], pack(expected, q.cardinalities))
