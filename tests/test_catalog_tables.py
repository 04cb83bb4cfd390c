"""Unity Catalog names (``tables.catalog`` + ``tables.database``): the jobs address
``catalog.schema.table`` on the embedded engine, and no part of the name can inject SQL."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from sidlib.config import ConfigError, load_config
from sidlib.spark import pointer
from sidlib.spark.tables import Tables

CATALOG = "spark_catalog"


def test_three_level_names_are_quoted_in_sql_and_catalog_reads(spark) -> None:  # type: ignore[no-untyped-def]
    cfg = load_config(None, [f"tables.catalog={CATALOG}", "tables.database=ads_sid", "tables.item_sids=sids_v2"])
    tables = Tables(spark, cfg.tables)
    assert tables.location("item_sids") == "`spark_catalog`.`ads_sid`.`sids_v2`"
    assert tables.sql_target("item_sids") == "`spark_catalog`.`ads_sid`.`sids_v2`"
    assert tables.catalog_name("events") == "spark_catalog.ads_sid.events"
    assert not tables.by_path
    two_level = Tables(spark, load_config(None, ["tables.database=ads_sid"]).tables)
    assert two_level.location("events") == "`ads_sid`.`events`"


@pytest.mark.parametrize("override", [
    "tables.catalog=main`; DROP TABLE x; --",
    "tables.catalog=main.other",
    "tables.database=sch`.`x",
    "tables.database=sch name",
    "tables.item_sids=item_sids` USING x; --",
    "tables.events=../events",
])
def test_injection_through_any_part_of_the_name_is_refused(override: str) -> None:
    overrides = [override] + ([] if "database" in override else ["tables.database=sch"])
    if "catalog" not in override:
        overrides.append(f"tables.catalog={CATALOG}")
    with pytest.raises(ConfigError, match="plain identifier"):
        load_config(None, overrides)


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    from sidlib.config import TablesConfig

    with pytest.raises(ConfigError, match="tables.events must be a plain identifier"):
        TablesConfig(events="events\n")  # a YAML override strips it; a config built in code must not pass it


def test_a_catalog_without_a_database_is_refused() -> None:
    with pytest.raises(ConfigError, match="tables.catalog needs tables.database"):
        load_config(None, [f"tables.catalog={CATALOG}"])


def test_jobs_run_on_catalog_tables(pipeline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """refresh (fit, encode, switch), a second refresh (incremental), rollback, build_sequences,
    export_training_data and evaluate_ranker, all on ``spark_catalog.<schema>.*`` tables."""
    from sidlib.jobs import build_sequences, evaluate_ranker, export_training_data, refresh, rollback

    path_cfg, path_tables = pipeline
    database = f"uc_{uuid.uuid4().hex[:8]}"
    spark = path_tables.spark
    spark.sql(f"CREATE DATABASE {CATALOG}.{database} LOCATION '{tmp_path / 'warehouse'}'")
    cfg = dataclasses.replace(path_cfg, tables=dataclasses.replace(path_cfg.tables, catalog=CATALOG, database=database,
                                                                   root=str(tmp_path / "no_path_tables")))
    cfg.sequences.history_length = 5
    cfg.evaluate.variants, cfg.evaluate.seeds = ["id", "side"], [0]
    cfg.evaluate.epochs, cfg.evaluate.max_steps, cfg.evaluate.eval_every, cfg.evaluate.batch_size = 1, 3, 2, 256
    cfg.evaluate.max_rows, cfg.evaluate.recall_queries = {}, 20
    cfg.evaluate.report_dir = str(tmp_path / "report")
    tables = Tables(spark, cfg.tables)
    for table in ("items", "events", "content_embeddings"):
        tables.write(path_tables.read(table).frame, table)

    first = refresh.run(cfg, tables)
    assert [s.action for s in first.signals] == ["refit"]
    assert pointer.current(tables, "text").sid_version == first.signals[0].sid_version
    second = refresh.run(cfg, tables)
    assert [s.action for s in second.signals] == ["incremental"]
    cfg.refresh.refit = True
    third = refresh.run(cfg, tables)
    assert third.signals[0].action == "refit" and third.signals[0].sid_version > first.signals[0].sid_version
    cfg.refresh.refit = False
    cfg.rollback.signal = "text"
    assert rollback.run(cfg, tables).to_version == first.signals[0].sid_version
    assert pointer.current(tables, "text").sid_version == first.signals[0].sid_version

    built = build_sequences.run(cfg, tables)
    exported = export_training_data.run(cfg, tables)
    assert exported.written["ranker_impressions"]["rows"] == built.written["impressions"]["rows"] > 0
    evaluated = evaluate_ranker.run(cfg, tables)
    assert list(evaluated.variants) == ["id", "side"]

    names = {row.tableName for row in spark.sql(f"SHOW TABLES IN {CATALOG}.{database}").collect()}
    assert {"items", "events", "content_embeddings", "item_sids", "sid_pointer", "user_histories", "impressions",
            "ranker_impressions"} <= names
    assert not Path(cfg.tables.root).exists(), "catalog tables must not write path tables"
    assert tables.version("item_sids") >= 1 and tables.storage_location("item_sids").startswith(str(tmp_path))
