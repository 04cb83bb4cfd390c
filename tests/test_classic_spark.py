"""The same job code on classic Spark (JVM, ``local[2]``) with Parquet tables (no Delta jars in CI).

Runs in its own pytest process (``-m classic_spark``): a Spark Connect session created earlier in the
same process would make the classic builder fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidlib.cli import run_with_session
from sidlib.errors import ConfigError
from sidlib.jobs import ingest_demo_data, inspect_tables

from conftest import demo_config

pytestmark = pytest.mark.classic_spark
ITEMS = 40


def test_ingest_and_inspect_on_classic_spark_parquet(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, engine="spark", fmt="parquet", max_items=ITEMS)
    written = run_with_session(ingest_demo_data.run, cfg)["written"]
    assert written["items"]["version"] is None  # Parquet has no versions
    report = run_with_session(inspect_tables.run, cfg)["tables"]
    assert report["items"]["rows"] == ITEMS
    assert report["content_embeddings"]["rows"] == written["content_embeddings"]["rows"]
    assert report["events"]["rows"] == written["events"]["rows"] > 1000


def test_delta_without_jars_is_a_clear_error(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, engine="spark", fmt="delta", max_items=ITEMS)
    with pytest.raises(ConfigError, match="tables.format is delta but engine 'spark' has no Delta jars"):
        run_with_session(inspect_tables.run, cfg)


def test_fit_encode_and_sequences_on_classic_spark_parquet(tmp_path: Path) -> None:
    import numpy as np

    from sidlib.artifacts import ArtifactStore
    from sidlib.jobs import build_sequences, encode_items, fit_quantizer

    cfg = demo_config(tmp_path / "tables", engine="spark", fmt="parquet", max_items=ITEMS)
    cfg.artifacts.root = str(tmp_path / "artifacts")
    cfg.fit.bits = 8
    cfg.fit.stat_partitions = 2
    run_with_session(ingest_demo_data.run, cfg)
    (artifact,) = run_with_session(fit_quantizer.run, cfg)["artifacts"]
    encoded = run_with_session(encode_items.run, cfg)
    assert encoded["items_in_version"] == ITEMS

    def read_back(c, tables):  # type: ignore[no-untyped-def]
        sids = tables.read("item_sids").frame.toPandas().sort_values("item_id")
        emb = tables.read("content_embeddings").frame.where("signal = 'text'").toPandas().sort_values("item_id")
        return {"sids": sids, "emb": emb}

    got = run_with_session(read_back, cfg)
    q = ArtifactStore(cfg.artifacts.root).get(artifact["version"]).load_quantizer()
    expected = q.encode(np.stack(got["emb"]["embedding"].to_numpy()))
    np.testing.assert_array_equal(np.stack(got["sids"]["codes"].to_numpy()), expected)

    # build_sequences on the same engine: one row per event, histories strictly before the impression
    cfg.sequences.layout = "materialized"
    built = run_with_session(build_sequences.run, cfg)
    assert built["written"]["sequences"]["rows"] == built["inputs"]["events"]["rows"] > 0
    seq = run_with_session(lambda c, tables: {"rows": tables.read("sequences").frame.toPandas()}, cfg)["rows"]
    for _, row in seq.head(200).iterrows():
        mask = np.asarray(row["hist_mask"], dtype=bool)
        assert (np.asarray(row["hist_ts"])[mask] < row["ts"]).all()
    sid_of = dict(zip(got["sids"]["item_id"], got["sids"]["sid"]))
    assert all(sid_of[i] == s for i, s in zip(seq["item_id"], seq["target_sid"]) if i in sid_of)


def test_jobs_run_under_spark_submit_with_the_active_session(tmp_path: Path) -> None:
    """``spark-submit jobs/<job>.py ... engine.name=active``: the job uses spark-submit's session config."""
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT

    cfg = demo_config(tmp_path, engine="spark", fmt="parquet", max_items=ITEMS)
    run_with_session(ingest_demo_data.run, cfg)
    submit = Path(sys.executable).with_name("spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    result = subprocess.run([str(submit), "--master", "local[2]", str(REPO_ROOT / "jobs" / "inspect_tables.py"),
                             f"tables.root={tmp_path}", "tables.format=parquet", "engine.name=active"],
                            capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"rows": 40' in result.stdout


def test_active_session_gets_arrow_and_a_refused_setting_is_one_clear_error(tmp_path: Path) -> None:
    """Jobs set what they need on a platform's session; a setting it cannot change (a static one here) is
    a ConfigError naming it, not a traceback from inside Spark."""
    from sidlib.config import EngineConfig
    from sidlib.spark.session import open_session

    cfg = demo_config(tmp_path, engine="spark", fmt="parquet")
    with open_session(cfg.engine, cfg.tables) as spark:
        spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "false")  # as plain spark-submit has it
        with open_session(EngineConfig(name="active")) as active:
            assert active.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
        refused = EngineConfig(name="active", spark_conf={"spark.sql.warehouse.dir": str(tmp_path / "elsewhere")})
        with pytest.raises(ConfigError, match="does not allow setting spark.sql.warehouse.dir"):
            with open_session(refused):
                pass


def test_catalog_schema_table_names_address_classic_spark_catalog_tables(tmp_path: Path) -> None:
    """Three-level names (``tables.catalog`` + ``tables.database``) on classic Spark's own catalog:
    existence, reads, the schema check and SQL through :meth:`Tables.sql_target` all reach
    ``spark_catalog.<schema>.<table>``. (Without Delta jars the table itself is Parquet, created here.)"""
    import dataclasses

    from sidlib.config import TablesConfig
    from sidlib.spark.session import open_session
    from sidlib.spark.tables import Tables

    cfg = demo_config(tmp_path, engine="spark", fmt="parquet")
    with open_session(cfg.engine, cfg.tables) as spark:
        spark.sql(f"CREATE DATABASE spark_catalog.uc_schema LOCATION '{tmp_path / 'warehouse'}'")
        rows = spark.createDataFrame([(1, "Heat (1995)", 1995), (2, "Toy Story (1995)", 1995)],
                                     "item_id bigint, title string, year int")
        rows.write.format("parquet").saveAsTable("spark_catalog.uc_schema.films")
        tables = Tables(spark, dataclasses.replace(TablesConfig(), catalog="spark_catalog", database="uc_schema",
                                                   items="films"))
        assert tables.sql_target("items") == "`spark_catalog`.`uc_schema`.`films`"
        assert tables.exists("items") and not tables.exists("events")
        expected = {"item_id": "bigint", "title": "string", "year": "int"}
        tables.check_schema("items", expected)
        assert sorted(r.item_id for r in tables.read_unpinned("items").collect()) == [1, 2]
        counted = spark.sql(f"SELECT count(*) AS n FROM {tables.sql_target('items')} WHERE year = 1995").collect()
        assert counted[0].n == 2
