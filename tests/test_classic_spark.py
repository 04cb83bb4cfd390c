"""The same job code on classic Spark (JVM, ``local[2]``) with Parquet tables (no Delta jars in CI).

Runs in its own pytest process (``-m classic_spark``): a Spark Connect session created earlier in the
same process would make the classic builder fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidlib.cli import run_with_session
from sidlib.errors import ConfigError
from sidlib.jobs import ingest, inspect

from conftest import demo_config

pytestmark = pytest.mark.classic_spark
ITEMS = 40


def test_ingest_and_inspect_on_classic_spark_parquet(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, engine="spark", fmt="parquet", max_items=ITEMS)
    written = run_with_session(ingest.run, cfg)["written"]
    assert written["items"]["version"] is None  # Parquet has no versions
    report = run_with_session(inspect.run, cfg)["tables"]
    assert report["items"]["rows"] == ITEMS
    assert report["content_embeddings"]["rows"] == written["content_embeddings"]["rows"]
    assert report["events"]["rows"] == written["events"]["rows"] > 1000


def test_delta_without_jars_is_a_clear_error(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, engine="spark", fmt="delta", max_items=ITEMS)
    with pytest.raises(ConfigError, match="tables.format is delta but engine 'spark' has no Delta jars"):
        run_with_session(inspect.run, cfg)
