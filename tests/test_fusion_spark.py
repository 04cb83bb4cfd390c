"""The fused input layout built on Spark, and fusion SIDs through the fit/encode jobs."""

from __future__ import annotations

import json

import numpy as np

from sidlib.config import DataQualityConfig
from sidlib.spark.embeddings import FUSION_SIGNAL, read_fused, to_matrix


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
