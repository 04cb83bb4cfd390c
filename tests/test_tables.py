"""Tables layer on real Delta tables through the embedded engine; read back independently by delta-rs."""

from __future__ import annotations

import pandas as pd
import pytest
from deltalake import DeltaTable

from sidlib.errors import ConfigError, TableError
from sidlib.schemas import ddl
from sidlib.spark.tables import equality_predicate, quote_identifier, sql_literal

SCHEMA = {"item_id": "bigint", "part": "int", "codes": "array<int>"}


def frame(spark, ids, part):  # type: ignore[no-untyped-def]
    pdf = pd.DataFrame({"item_id": ids, "part": part, "codes": [[int(i) % 7, 1, 2] for i in ids]})
    return spark.createDataFrame(pdf, schema=ddl(SCHEMA))


def rows(tables, table="item_sids"):  # type: ignore[no-untyped-def]
    return sorted((r["item_id"], r["part"], tuple(r["codes"])) for r in tables.read(table, expected=SCHEMA).frame.collect())


def test_write_read_versions_recorded(fresh_tables) -> None:  # type: ignore[no-untyped-def]
    t = fresh_tables
    assert t.write(frame(t.spark, range(5), 1), "item_sids", expected=SCHEMA, partition_by=["part"]) == 0
    assert t.write(frame(t.spark, range(3), 1), "item_sids", expected=SCHEMA, mode="append") == 1
    assert len(rows(t)) == 8
    assert t.reads[-1].version == 1 and t.reads[-1].table == "item_sids"
    assert t.read("item_sids", version=0, expected=SCHEMA).frame.count() == 5


def test_delta_files_roll_at_the_target_size(fresh_tables) -> None:  # type: ignore[no-untyped-def]
    """``tables.target_file_mb`` caps the files Sail writes (and so the rows it buffers per open file)."""
    import dataclasses

    from sidlib.spark.tables import Tables

    big = fresh_tables.spark.range(400_000).selectExpr("id AS item_id", "CAST(id % 3 AS INT) AS part",
                                                       "array(CAST(rand(1) * 1e9 AS INT), 1, 2) AS codes")
    files = {}
    for target in (1, 64):
        cfg = dataclasses.replace(fresh_tables.cfg, root=f"{fresh_tables.cfg.root}/mb{target}", target_file_mb=target)
        t = Tables(fresh_tables.spark, cfg)
        t.write(big, "item_sids", expected=SCHEMA)
        files[target] = DeltaTable(t.location("item_sids")).file_uris()
    assert len(files[1]) > len(files[64])


def test_overwrite_partition_is_idempotent_and_leaves_other_partitions(fresh_tables) -> None:  # type: ignore[no-untyped-def]
    t = fresh_tables
    t.write(frame(t.spark, range(10), 1), "item_sids", expected=SCHEMA, partition_by=["part"])
    # a new partition is appended (no MERGE), still as exactly one commit
    assert t.overwrite_partition(frame(t.spark, range(4), 2), "item_sids", {"part": 2}, expected=SCHEMA,
                                 partition_by=["part"]) == 1
    first = rows(t)
    t.overwrite_partition(frame(t.spark, range(4), 2), "item_sids", {"part": 2}, expected=SCHEMA, partition_by=["part"])
    assert rows(t) == first
    t.overwrite_partition(frame(t.spark, range(100, 102), 2), "item_sids", {"part": 2}, expected=SCHEMA, partition_by=["part"])
    after = rows(t)
    assert [r for r in after if r[1] == 1] == [r for r in first if r[1] == 1]
    assert [r[0] for r in after if r[1] == 2] == [100, 101]


def test_upsert_updates_and_inserts(fresh_tables) -> None:  # type: ignore[no-untyped-def]
    t = fresh_tables
    t.write(frame(t.spark, range(3), 1), "item_sids", expected=SCHEMA)
    pdf = pd.DataFrame({"item_id": [2, 3], "part": [1, 1], "codes": [[9, 9, 9], [8, 8, 8]]})
    t.upsert(t.spark.createDataFrame(pdf, schema=ddl(SCHEMA)), "item_sids", ["item_id", "part"], expected=SCHEMA)
    assert rows(t) == [(0, 1, (0, 1, 2)), (1, 1, (1, 1, 2)), (2, 1, (9, 9, 9)), (3, 1, (8, 8, 8))]


def test_schema_mismatch_is_caught(fresh_tables) -> None:  # type: ignore[no-untyped-def]
    t = fresh_tables
    with pytest.raises(TableError, match=r"missing columns \['extra'\]"):
        t.write(frame(t.spark, range(3), 1), "item_sids", expected={**SCHEMA, "extra": "string"})
    t.write(frame(t.spark, range(3), 1), "item_sids", expected=SCHEMA)
    with pytest.raises(TableError, match=r"wrong types codes: array<int> \(expected array<bigint>\)"):
        t.check_schema("item_sids", {**SCHEMA, "codes": "array<bigint>"})


def test_missing_table(fresh_tables) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TableError, match="table 'events' not found"):
        fresh_tables.read("events")


def test_delta_rs_reads_what_we_wrote(fresh_tables) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    t = fresh_tables
    t.write(frame(t.spark, range(7), 1), "item_sids", expected=SCHEMA, partition_by=["part"])
    t.write(frame(t.spark, range(7, 10), 2), "item_sids", expected=SCHEMA, mode="append")
    dt = DeltaTable(t.location("item_sids"))
    assert dt.version() == 1
    assert {f.name: str(f.type) for f in dt.schema().fields} == {
        "item_id": 'PrimitiveType("long")', "part": 'PrimitiveType("integer")',
        "codes": 'ArrayType(PrimitiveType("integer"), contains_null=True)'}
    assert dt.metadata().partition_columns == ["part"]
    n = sum(pq.ParquetFile(uri.removeprefix("file://")).metadata.num_rows for uri in dt.file_uris())
    assert n == 10


def test_sql_identifiers_and_literals_are_validated() -> None:
    assert quote_identifier("sid_version") == "`sid_version`"
    for bad in ["x`; DROP TABLE t; --", "a b", "1abc", ""]:
        with pytest.raises(ConfigError, match="invalid identifier"):
            quote_identifier(bad)
    assert sql_literal("it's") == "'it\\'s'"
    assert equality_predicate({"sid_version": 3, "signal": "text"}, "t") == "`t`.`sid_version` = 3 AND `t`.`signal` = 'text'"
    with pytest.raises(ConfigError):
        sql_literal([1, 2])
