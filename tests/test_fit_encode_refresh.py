"""fit_quantizer -> encode_items -> refresh on the embedded engine with real Delta tables."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import pytest

from sidlib import schemas
from sidlib.artifacts import ArtifactError, ArtifactStore
from sidlib.jobs import encode_items, fit_quantizer, refresh
from sidlib.sid import pack, prefix_ngrams
from sidlib.spark import pointer
from sidlib.spark.arrow_lists import to_matrix


def sids_frame(tables, version: int) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    pdf = tables.read_unpinned("item_sids").where(f"sid_version = {version}").toPandas()
    return pdf.sort_values("item_id").reset_index(drop=True)


def text_embeddings(tables, model_version: str | None = None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    df = tables.read_unpinned("content_embeddings").where("signal = 'text'")
    if model_version:
        df = df.where(f"model_version = '{model_version}'")
    return df.toPandas().sort_values("item_id").reset_index(drop=True)


def test_fit_publishes_versioned_artifact_with_provenance(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    summary = fit_quantizer.run(cfg, tables)
    (art,) = summary["artifacts"]
    assert art["version"] == 1 and art["signal"] == "text"
    manifest = ArtifactStore(cfg.artifacts.root).get(1).manifest
    assert manifest["source"] == {"table": "content_embeddings", "version": 0, "valid_rows": 120, "rejected": {}}
    assert manifest["cardinalities"] == [16, 16, 16] and manifest["bits"] == 12.0
    assert manifest["fit"]["quantizer"] == "rq_kmeans" and manifest["fit"]["seed"] == 0
    assert 0 < manifest["metrics"]["cosine_loss"] < 1 and manifest["holdout_rows"] + manifest["train_rows"] == 120
    # Never overwrite: a second fit is a new version and v1 is untouched.
    before = (ArtifactStore(cfg.artifacts.root).version_path(1) / "quantizer" / "weights.pt").read_bytes()
    assert fit_quantizer.run(cfg, tables)["artifacts"][0]["version"] == 2
    assert (ArtifactStore(cfg.artifacts.root).version_path(1) / "quantizer" / "weights.pt").read_bytes() == before


def test_distributed_em_fit_is_deterministic(pipeline, caplog) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    cfg.fit.driver_fit_max_mb = 0  # always on the executors
    with caplog.at_level(logging.INFO, logger="sidlib.spark.fit"):
        fit_quantizer.run(cfg, tables)
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("EM level")]
    assert progress and "iteration 1: first step" in progress[0] and "partitions" in progress[0]
    assert not any(" inf " in line for line in progress)  # a re-seed is named, not shown as inf
    fit_quantizer.run(dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, stat_partitions=3)), tables)
    fit_quantizer.run(cfg, tables)
    store = ArtifactStore(cfg.artifacts.root)
    x = to_matrix(text_embeddings(tables)["embedding"])
    codes = [store.get(v).load_quantizer().encode(x) for v in (1, 2, 3)]
    np.testing.assert_array_equal(codes[0], codes[2])  # same data version + config + seed: identical
    assert (codes[0] == codes[1]).mean() > 0.9  # other partitioning: same model up to float summation order


def test_small_em_fit_runs_in_the_driver_like_the_distributed_one(pipeline, caplog) -> None:  # type: ignore[no-untyped-def]
    """Under fit.driver_fit_max_mb the rows are collected once and fit in-process: the same EM, the same
    init sample, only the summation order differs from the executors' fit."""
    cfg, tables = pipeline
    with caplog.at_level(logging.INFO, logger="sidlib.spark.fit"):
        in_driver = fit_quantizer.run(cfg, tables)["artifacts"][0]
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("EM level")]
    assert progress and all("rows in the driver" in line for line in progress)
    distributed = fit_quantizer.run(dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, driver_fit_max_mb=0)), tables)
    store = ArtifactStore(cfg.artifacts.root)
    x = to_matrix(text_embeddings(tables)["embedding"])
    a, b = (store.get(r["version"]).load_quantizer().encode(x) for r in (in_driver, distributed["artifacts"][0]))
    assert (a == b).mean() > 0.9
    assert store.get(in_driver["version"]).manifest["train_rows"] == store.get(distributed["artifacts"][0]["version"]).manifest["train_rows"]


def test_encode_matches_in_process_and_is_idempotent(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    fit_quantizer.run(cfg, tables)
    first = encode_items.run(cfg, tables)
    assert first["items_in_version"] == 120 and first["items_encoded"] == 120
    tables.check_schema("item_sids", schemas.ITEM_SIDS)
    got = sids_frame(tables, 1)
    emb = text_embeddings(tables)
    q = ArtifactStore(cfg.artifacts.root).get(1).load_quantizer()
    expected = q.encode(to_matrix(emb["embedding"]))
    np.testing.assert_array_equal(got["item_id"], emb["item_id"])
    np.testing.assert_array_equal(np.stack(got["codes"]), expected)
    np.testing.assert_array_equal(got["sid"], pack(expected, q.cardinalities))
    np.testing.assert_array_equal(np.stack(got["ngrams"]), prefix_ngrams(expected, q.cardinalities))
    encode_items.run(cfg, tables)  # rerun: same rows, same content
    pd.testing.assert_frame_equal(sids_frame(tables, 1), got)


def test_incremental_encodes_only_new_items_and_keeps_old_sids(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    fit_quantizer.run(cfg, tables)
    encode_items.run(cfg, tables)
    before = sids_frame(tables, 1)
    emb = text_embeddings(tables).head(5).assign(item_id=lambda d: d["item_id"] + 10_000)
    tables.write(tables.spark.createDataFrame(emb, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                 "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode="append")
    inc = encode_items.run(dataclasses.replace(cfg, encode=dataclasses.replace(cfg.encode, mode="incremental")), tables)
    assert inc["items_encoded"] == 5 and inc["items_in_version"] == 125
    after = sids_frame(tables, 1)
    pd.testing.assert_frame_equal(after[after["item_id"] < 10_000].reset_index(drop=True), before)
    new = after[after["item_id"] >= 10_000].reset_index(drop=True)
    np.testing.assert_array_equal(np.stack(new["codes"]), np.stack(before.head(5)["codes"]))  # same embeddings


def test_refresh_refits_on_new_model_version_else_incremental(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    first = refresh.run(cfg, tables)["signals"][0]
    assert first["action"] == "refit" and first["sid_version"] == 1 and first["previous_version"] is None
    assert pointer.current(tables, "text").sid_version == 1
    again = refresh.run(cfg, tables)["signals"][0]
    assert again["action"] == "incremental" and again["encode"]["items_encoded"] == 0
    # The upstream embedding model is refreshed: new vectors for every item under a new model_version.
    emb = text_embeddings(tables).assign(
        model_version="all-MiniLM-L6-v2@2", logged_at=pd.Timestamp("2026-02-01"),
        embedding=lambda d: [np.roll(e, 1) for e in d["embedding"]])
    tables.write(tables.spark.createDataFrame(emb, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                 "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode="append")
    second = refresh.run(cfg, tables)["signals"][0]
    assert second["action"] == "refit" and second["sid_version"] == 2 and second["previous_version"] == 1
    assert second["model_version"] == "all-MiniLM-L6-v2@2"
    assert second["changes"]["compared"] == 120 and 0 <= second["changes"]["prefix_changed"] <= 120
    assert pointer.current(tables, "text") == pointer.Pointer("text", 2, 1, "all-MiniLM-L6-v2@2")
    assert len(sids_frame(tables, 1)) == 120 and len(sids_frame(tables, 2)) == 120  # old kept for rollback
    manifest = ArtifactStore(cfg.artifacts.root).get(2).manifest
    assert manifest["model_version"] == "all-MiniLM-L6-v2@2" and manifest["source"]["version"] == 1


def test_pointer_switch_is_compare_and_swap(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    pointer.switch(tables, "text", 1, "m", expected=None)
    pointer.switch(tables, "text", 2, "m", expected=1)
    with pytest.raises(pointer.PointerConflict):
        pointer.switch(tables, "text", 3, "m", expected=1)  # a concurrent run already moved it
    assert pointer.current(tables, "text").sid_version == 2


def test_encode_errors_are_clear(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    with pytest.raises(ArtifactError, match="no artifact for signal 'text'"):
        encode_items.run(cfg, tables)
    fit_quantizer.run(cfg, tables)
    with pytest.raises(ArtifactError, match="artifact version 7 not found"):
        encode_items.run(dataclasses.replace(cfg, encode=dataclasses.replace(cfg.encode, sid_version=7)), tables)
    with pytest.raises(ArtifactError, match="fitted for signal 'text', not 'credits'"):
        encode_items.run(dataclasses.replace(cfg, encode=dataclasses.replace(cfg.encode, signal="credits", sid_version=1)), tables)
    weights = ArtifactStore(cfg.artifacts.root).version_path(1) / "quantizer" / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch for quantizer/weights.pt"):
        encode_items.run(cfg, tables)
    manifest = json.loads((weights.parents[1] / "manifest.json").read_text())
    assert manifest["version"] == 1


def test_rollback_switches_back_and_refuses_missing_versions(pipeline) -> None:  # type: ignore[no-untyped-def]
    from sidlib.errors import SidlibError
    from sidlib.steps.rollback import roll_back

    cfg, tables = pipeline
    store = ArtifactStore(cfg.artifacts.root)
    with pytest.raises(SidlibError, match="no current SID version"):
        roll_back(tables, store, "text")
    refresh.run(cfg, tables)
    with pytest.raises(SidlibError, match="no previous SID version"):
        roll_back(tables, store, "text")
    refresh.run(dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, seed=1)), tables)  # same model: no refit
    assert pointer.current(tables, "text").sid_version == 1
    fit_quantizer.run(cfg, tables)  # v2 exists as an artifact but was never encoded
    with pytest.raises(SidlibError, match="item_sids has no rows for version 2"):
        roll_back(tables, store, "text", to_version=2)
    encode_items.run(dataclasses.replace(cfg, encode=dataclasses.replace(cfg.encode, sid_version=2)), tables)
    pointer.switch(tables, "text", 2, "all-MiniLM-L6-v2", expected=1)
    result = roll_back(tables, store, "text")
    assert result["from_version"] == 2 and result["to_version"] == 1 and result["items"] == 120
    assert pointer.current(tables, "text").sid_version == 1


def test_neural_quantizers_train_per_signal_in_parallel_tasks(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    cfg = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, quantizer="dpca", bits=12, signals=["text", "credits"],
                                                           params={"epochs": 2}))
    arts = {a["signal"]: a for a in fit_quantizer.run(cfg, tables)["artifacts"]}
    assert set(arts) == {"text", "credits"}
    store = ArtifactStore(cfg.artifacts.root)
    for signal, art in arts.items():
        manifest = store.get(art["version"]).manifest
        assert manifest["quantizer"] == "dpca" and manifest["fit"]["signals"] == [signal]
        assert manifest["cardinalities"] == [3] * 6 and 0 < manifest["metrics"]["cosine_loss"] < 1
    # 12 bits = 7 trits = 3 groups x 2 levels (6 codes). The per-signal task sorts its rows, so a
    # refit gives byte-identical weights.
    again = {a["signal"]: a["version"] for a in fit_quantizer.run(cfg, tables)["artifacts"]}
    for signal in ("text", "credits"):
        a = store.version_path(arts[signal]["version"]) / "quantizer" / "weights.pt"
        b = store.version_path(again[signal]) / "quantizer" / "weights.pt"
        assert store.get(arts[signal]["version"]).manifest["files"] == store.get(again[signal]).manifest["files"], (a, b)
    summary = encode_items.run(dataclasses.replace(cfg, encode=dataclasses.replace(cfg.encode, signal="credits",
                                                                             sid_version=arts["credits"]["version"])), tables)
    assert 60 < summary["items_in_version"] < 120  # only items with Wikidata credits
