"""Shared fixtures: one embedded (Sail) session per test process, and a small real demo data set
ingested once into a temporary directory and reused by every test that needs upstream tables."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import pytest

from sidlib.config import EngineConfig, EvaluateConfig, FitConfig, IngestConfig, SidlibConfig, TablesConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Shared with `make demo`, so MiniLM embeddings are computed once per machine.
EMBEDDING_CACHE = REPO_ROOT / "data" / "cache"
DEMO_ITEMS = 120


def demo_config(root: Path, engine: str = "local", fmt: str = "delta", max_items: int = DEMO_ITEMS) -> SidlibConfig:
    """Library defaults with the demo data's settings from ``conf/demo.yaml`` (how its signals are
    reconstructed, the query titles) and a fixed ingest time."""
    demo = load_config(REPO_ROOT / "conf" / "demo.yaml")
    return SidlibConfig(
        engine=EngineConfig(name=engine),  # type: ignore[arg-type]
        tables=TablesConfig(root=str(root), format=fmt),  # type: ignore[arg-type]
        ingest=IngestConfig(cache_dir=str(EMBEDDING_CACHE), max_items=max_items, logged_at="2026-01-01T00:00:00"),
        fit=FitConfig(signal_kinds=demo.fit.signal_kinds),
        evaluate=EvaluateConfig(query_titles=demo.evaluate.query_titles),
    )


@pytest.fixture(scope="session")
def spark(request: pytest.FixtureRequest) -> Iterator[object]:
    if request.node.get_closest_marker("classic_spark"):
        raise RuntimeError("the local-engine fixture must not be used by classic_spark tests")
    from sidlib.spark.session import open_session

    with open_session(EngineConfig(name="local")) as session:
        yield session


@pytest.fixture(scope="session")
def demo_tables(spark: object, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Real MovieLens/Wikidata/MiniLM tables for the first DEMO_ITEMS items, ingested once."""
    from sidlib.jobs import ingest_demo_data
    from sidlib.spark.tables import Tables

    cfg = demo_config(tmp_path_factory.mktemp("demo_tables"))
    tables = Tables(spark, cfg.tables)  # type: ignore[arg-type]
    summary = ingest_demo_data.run(cfg, tables)
    return cfg, tables, summary


@pytest.fixture
def fresh_tables(spark: object, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A Tables bound to an empty root, for tests that write their own tables."""
    from sidlib.spark.tables import Tables

    cfg = dataclasses.replace(demo_config(tmp_path).tables)
    return Tables(spark, cfg)  # type: ignore[arg-type]


@pytest.fixture
def pipeline(demo_tables, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A private copy of the demo upstream tables (so tests can write item_sids, pointers, new
    embeddings) plus a config with a private artifact root and a small bit budget for 120 items."""
    from sidlib.spark.tables import Tables

    demo_cfg, demo, _ = demo_tables
    cfg = demo_config(tmp_path / "tables")
    cfg.artifacts.root = str(tmp_path / "artifacts")
    cfg.fit.bits = 12  # 3 levels x 16 codes: sensible for ~100 training items
    tables = Tables(demo.spark, cfg.tables)
    for table in ("items", "events", "content_embeddings"):
        tables.write(demo.read(table).frame, table)
    tables.reads.clear()
    return cfg, tables
