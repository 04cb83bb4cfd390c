"""Adversarial input and operations, round two: each test reproduces a case that once failed.

On the embedded engine with real Delta tables (the ``pipeline`` fixture: a private copy of the demo)."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sidlib import schemas
from sidlib.artifacts import ArtifactStore
from sidlib.errors import ConfigError
from sidlib.jobs import encode_items, fit_quantizer, refresh
from sidlib.spark import embeddings, pointer
from sidlib.spark.tables import Tables
from sidlib.steps import rollback

TEXT_MODEL = "all-MiniLM-L6-v2"


def text_rows(tables: Tables) -> pd.DataFrame:
    return tables.read_unpinned("content_embeddings").where("signal = 'text'").toPandas()


def write_embeddings(tables: Tables, frame: pd.DataFrame, mode: str = "append") -> None:
    frame = frame[list(schemas.CONTENT_EMBEDDINGS)].assign(item_id=lambda d: d["item_id"].astype("Int64"))
    tables.write(tables.spark.createDataFrame(frame, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                 "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode=mode)


def with_(cfg, section: str, **changes):  # type: ignore[no-untyped-def]
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})


def test_wrong_dimension_rows_scanned_first_do_not_block_full_encode_or_refresh(pipeline, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """A few rows of another size in the first data file once decided the full encode's dimension."""
    cfg, tables = pipeline
    everything = tables.read_unpinned("content_embeddings").toPandas()
    short = text_rows(tables).head(10).assign(item_id=lambda d: d["item_id"] + 9000,
                                              embedding=lambda d: [e[:383] for e in d["embedding"]])
    write_embeddings(tables, short, mode="overwrite")  # the bad rows are the first file scanned
    write_embeddings(tables, everything)
    # which rows a sample gets depends on the scan order: here it gets only the short ones
    monkeypatch.setattr(embeddings, "sampled_size", lambda rows: 383)
    with caplog.at_level(logging.INFO, logger="sidlib.spark.embeddings"):
        result = refresh.run(cfg, tables)["signals"][0]
    assert "checking every row first" in caplog.text
    assert result["action"] == "refit" and result["encode"]["items_in_version"] == 120
    assert result["encode"]["rejected"] == {"wrong dimension": 10}
    assert ArtifactStore(cfg.artifacts.root).versions() == [1]  # no orphan artifact
    full = encode_items.run(with_(cfg, "encode", mode="full"), tables)
    assert full["items_in_version"] == 120 and full["rejected"] == {"wrong dimension": 10}


def test_null_ids_and_keys_zero_and_huge_vectors_are_quarantined_once(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    good = np.asarray(text_rows(tables)["embedding"].iloc[0], dtype=np.float32)
    base = {"signal": "text", "model_version": TEXT_MODEL, "logged_at": pd.Timestamp("2026-01-01")}
    huge = good.copy()
    huge[0] = 3e38
    write_embeddings(tables, pd.DataFrame([
        {**base, "item_id": None, "embedding": good},
        {**base, "item_id": 9201, "embedding": np.zeros_like(good)},
        {**base, "item_id": 9202, "embedding": huge},
        {**base, "item_id": 9203, "embedding": good, "signal": None},
        {**base, "item_id": 9204, "embedding": good, "model_version": None},
    ]))
    expected = {"null item_id": 1, "all-zero vector": 1, "value out of range": 1, "null signal": 1,
                "null model_version": 1}
    fitted = fit_quantizer.run(cfg, tables)
    assert fitted["rejected"]["text"] == expected
    assert all(math.isfinite(v) for v in fitted["artifacts"][0]["metrics"].values())
    for mode in ("full", "incremental", "full"):  # the full encode checks rows in its UDF; the others by SQL
        summary = encode_items.run(with_(cfg, "encode", mode=mode), tables)
        assert summary["items_in_version"] == 120 and (mode == "incremental" or summary["rejected"] == expected)
    ids = tables.read_unpinned("item_sids").toPandas()["item_id"]
    assert ids.notna().all() and ids.min() >= 1 and len(ids) == 120
    rejected = tables.read_unpinned("rejected_rows").toPandas()
    assert rejected.groupby("job")["reason"].apply(sorted).to_dict() == {
        job: sorted(expected) for job in ("encode_items", "fit_quantizer")}  # reruns added no copies


def test_partial_upstream_rollout_keeps_the_current_version_until_it_covers_enough(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    assert refresh.run(cfg, tables)["signals"][0]["sid_version"] == 1
    rolled = text_rows(tables).assign(model_version=f"{TEXT_MODEL}@2", logged_at=pd.Timestamp("2026-02-01"),
                                      embedding=lambda d: [np.roll(e, 1) for e in d["embedding"]])
    write_embeddings(tables, rolled.head(100))  # the new model reached 100 of the 120 items
    waiting = refresh.run(cfg, tables)["signals"][0]
    assert waiting["action"] == "rollout_incomplete" and waiting["rollout"] == {"items": 120, "with_new_model": 100}
    assert pointer.current(tables, "text").sid_version == 1 and ArtifactStore(cfg.artifacts.root).versions() == [1]
    write_embeddings(tables, rolled.tail(20))
    done = refresh.run(cfg, tables)["signals"][0]
    assert done["action"] == "refit" and done["encode"]["items_in_version"] == 120
    assert pointer.current(tables, "text").sid_version == done["sid_version"] == 2


def test_rollback_holds_is_idempotent_and_refresh_respects_the_hold(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    refresh.run(cfg, tables)
    new_model = text_rows(tables).assign(model_version=f"{TEXT_MODEL}@2", logged_at=pd.Timestamp("2026-02-01"),
                                         embedding=lambda d: [np.roll(e, 1) for e in d["embedding"]])
    write_embeddings(tables, new_model)
    assert refresh.run(cfg, tables)["signals"][0]["sid_version"] == 2
    first = rollback.roll_back(tables, ArtifactStore(cfg.artifacts.root), "text")
    assert (first["action"], first["to_version"]) == ("rolled_back", 1)
    again = rollback.roll_back(tables, ArtifactStore(cfg.artifacts.root), "text")
    assert (again["action"], again["to_version"]) == ("already_held", 1)
    assert pointer.current(tables, "text") == pointer.Pointer("text", 1, 2, TEXT_MODEL, held=True)
    with pytest.raises(pointer.PointerConflict, match="held by a rollback"):  # a refresh that started before it
        pointer.switch(tables, "text", 3, f"{TEXT_MODEL}@2", expected=1)
    held = refresh.run(cfg, tables)["signals"][0]
    assert held["action"] == "held" and pointer.current(tables, "text").sid_version == 1
    assert ArtifactStore(cfg.artifacts.root).versions() == [1, 2]  # no refit while held
    assert rollback.release(tables, "text")["action"] == "released"
    assert pointer.current(tables, "text") == pointer.Pointer("text", 1, 2, TEXT_MODEL, held=False)
    assert rollback.release(tables, "text")["action"] == "not_held"
    after = refresh.run(cfg, tables)["signals"][0]
    assert after["action"] == "refit" and pointer.current(tables, "text").sid_version == 3


def test_a_symlinked_table_outside_the_root_is_refused(pipeline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    fit_quantizer.run(cfg, tables)
    outside = tmp_path / "outside"
    outside.mkdir()
    (Path(cfg.tables.root) / "item_sids").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigError, match="outside tables.root"):
        encode_items.run(cfg, tables)
    assert list(outside.iterdir()) == []
