"""Collision-free IDs (``encode.unique``) and the SID -> item lookup table ``sid_items``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest

from sidlib import schemas
from sidlib.errors import InvalidInputError
from sidlib.jobs import encode_items, fit_quantizer, refresh
from sidlib.sid import hash_size


def _sid_items(tables, version: int = 1):  # type: ignore[no-untyped-def]
    frame = tables.read_unpinned("sid_items").where(f"sid_version = {version}").toPandas()
    return frame.sort_values("item_id").reset_index(drop=True)


def _unique(cfg, **changes):  # type: ignore[no-untyped-def]
    return dataclasses.replace(cfg, encode=dataclasses.replace(cfg.encode, unique=True, **changes))


@pytest.fixture
def colliding(pipeline):  # type: ignore[no-untyped-def]
    """A 6-bit SID (3 levels x 4 codes) for 120 items: many items share one."""
    cfg, tables = pipeline
    cfg.fit.bits = 6
    fit_quantizer.run(cfg, tables)
    return _unique(cfg, unique_cap=64), tables


def test_no_two_items_share_an_id_and_the_lookup_is_sorted_by_codes(colliding) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = colliding
    summary = encode_items.run(cfg, tables)
    items = _sid_items(tables)
    sids = tables.read("item_sids").frame.toPandas().sort_values("item_id").reset_index(drop=True)
    assert len(items) == len(sids) == 120 and summary.unique["items"] == 120
    assert summary.unique["shared_sids"] > 0 and summary.unique["cardinalities"] == [4, 4, 4, 64]
    keys = {(tuple(c), d) for c, d in zip(items["codes"], items["dedup"])}
    assert len(keys) == 120 and items["unique_sid"].is_unique
    np.testing.assert_array_equal(items["sid"], sids["sid"])  # the semantic SID is item_sids' own
    np.testing.assert_array_equal(items["unique_sid"] % hash_size([4, 4, 4]), items["sid"])
    assert summary.unique["max_dedup"] == items["dedup"].max() < 64
    for sid, group in items.groupby("sid"):  # first numbering: 0, 1, ... in item-id order
        assert list(group.sort_values("item_id")["dedup"]) == list(range(len(group)))
    for file in tables.spark.read.format("delta").load(tables.location("sid_items")).inputFiles():
        rows = pq.read_table(file.removeprefix("file://"), columns=["codes", "dedup"]).to_pylist()
        keys = [(r["codes"], r["dedup"]) for r in rows]
        assert keys == sorted(keys), "each file of the lookup is sorted by (codes, dedup)"


def test_incremental_runs_never_renumber_existing_items(colliding) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = colliding
    encode_items.run(cfg, tables)
    before = _sid_items(tables)
    # five new items with the embeddings of five existing ones: they land in occupied SIDs
    emb = tables.read("content_embeddings").frame.where("signal = 'text'").toPandas().sort_values("item_id").head(5)
    emb = emb.assign(item_id=emb["item_id"] + 10_000)
    tables.write(tables.spark.createDataFrame(emb, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                 "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode="append")
    incremental = dataclasses.replace(cfg, encode=dataclasses.replace(cfg.encode, mode="incremental"))
    assert encode_items.run(incremental, tables).items_encoded == 5
    after = _sid_items(tables)
    old = after[after["item_id"] < 10_000].reset_index(drop=True)
    assert old.equals(before)  # existing items keep every column, their dedup above all
    new = after[after["item_id"] >= 10_000]
    for _, row in new.iterrows():
        same = before[before["sid"] == row["sid"]]
        assert row["dedup"] == same["dedup"].max() + 1 + (new[(new["sid"] == row["sid"]) & (new["item_id"] < row["item_id"])]).shape[0]
    assert after["unique_sid"].is_unique
    encode_items.run(incremental, tables)  # nothing new: the table is unchanged
    assert _sid_items(tables).equals(after)


def test_a_sid_over_the_cap_is_an_error_naming_it(colliding) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = colliding
    with pytest.raises(InvalidInputError, match=r"encode.unique_cap=2 is too small for codes \[\d+, \d+, \d+\]"):
        encode_items.run(_unique(cfg, unique_cap=2), tables)


def test_refresh_writes_the_lookup_of_each_version_it_encodes(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    cfg = _unique(cfg)
    (result,) = refresh.run(cfg, tables).signals
    assert result.encode.unique["items"] == 120 and len(_sid_items(tables, result.sid_version)) == 120
    assert refresh.run(cfg, tables).signals[0].encode.unique["items"] == 120  # incremental: unchanged
