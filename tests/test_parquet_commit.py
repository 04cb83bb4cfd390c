"""Parquet path tables change by staging and renaming (sidlib.spark.parquet_commit), on the embedded engine.

Regression: Sail ignores dynamic partition overwrite, so replacing one SID version used to delete every
other version's rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sidlib import schemas
from sidlib.config import TablesConfig
from sidlib.spark import parquet_commit
from sidlib.spark.tables import Tables


def sid_rows(spark, ids, version):  # type: ignore[no-untyped-def]
    pdf = pd.DataFrame({"item_id": list(ids), "signal": "text", "sid_version": version,
                        "codes": [[i % 5, 1] for i in ids], "sid": list(ids), "ngrams": [[i, i] for i in ids]})
    return spark.createDataFrame(pdf, schema=schemas.ddl(schemas.ITEM_SIDS))


def by_version(tables: Tables) -> dict[int, list[int]]:
    got: dict[int, list[int]] = {}
    for r in tables.read("item_sids").frame.collect():
        got.setdefault(int(r["sid_version"]), []).append(int(r["item_id"]))
    return {v: sorted(ids) for v, ids in got.items()}


def parquet_tables(spark, root: Path) -> Tables:  # type: ignore[no-untyped-def]
    return Tables(spark, TablesConfig(root=str(root), format="parquet"))


def test_replacing_one_parquet_version_keeps_the_others(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tables = parquet_tables(spark, tmp_path)
    put = lambda ids, v: tables.overwrite_partition(sid_rows(spark, ids, v), "item_sids", {"sid_version": v},  # noqa: E731
                                                     expected=schemas.ITEM_SIDS, partition_by=["sid_version"])
    put(range(5), 1)
    put(range(7), 2)
    put(range(10, 13), 1)  # a rerun of version 1 with other rows
    put(range(10, 13), 1)  # and again: idempotent
    assert by_version(tables) == {1: [10, 11, 12], 2: list(range(7))}
    assert not any((tmp_path / parquet_commit.STAGING).iterdir())  # staged and replaced files cleaned up


def test_parquet_append_and_overwrite_publish_by_rename(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tables = parquet_tables(spark, tmp_path)
    kw = {"expected": schemas.ITEM_SIDS, "partition_by": ["sid_version"]}
    tables.write(sid_rows(spark, range(3), 1), "item_sids", **kw)
    tables.upsert(sid_rows(spark, range(3, 5), 1), "item_sids", ["item_id", "sid_version"], **kw)
    tables.write(sid_rows(spark, range(2), 2), "item_sids", mode="append", **kw)
    assert by_version(tables) == {1: list(range(5)), 2: [0, 1]}
    tables.write(sid_rows(spark, [9], 3), "item_sids", **kw)  # overwrite: only the new rows remain
    assert by_version(tables) == {3: [9]}
    tables.write(sid_rows(spark, [], 4), "item_sids", mode="append", **kw)  # zero rows: nothing changes
    assert by_version(tables) == {3: [9]}


def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("old")
    (b / "y").write_text("new")
    assert parquet_commit.exchange(a, b)  # local filesystems support RENAME_EXCHANGE
    assert [p.name for p in a.iterdir()] == ["y"] and [p.name for p in b.iterdir()] == ["x"]
    parquet_commit.replace_dir(b, a)  # b (now holding x) becomes a's content; b is gone
    assert [p.name for p in a.iterdir()] == ["x"] and not b.exists()
