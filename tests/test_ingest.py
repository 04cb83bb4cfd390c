"""The demo-data job on real MovieLens-1M + Wikidata + MiniLM data, through the embedded engine."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
from deltalake import DeltaTable

from sidlib import schemas
from sidlib.data.movielens import GENRES
from sidlib.jobs import inspect_tables

from conftest import DEMO_ITEMS


def test_ingest_tables_have_expected_schema_and_rows(demo_tables) -> None:  # type: ignore[no-untyped-def]
    cfg, tables, summary = demo_tables
    written = summary["written"]
    assert written["items"]["rows"] == DEMO_ITEMS
    for table in schemas.UPSTREAM:
        schema = schemas.by_table()[table]
        tables.check_schema(table)
        dt = DeltaTable(tables.location(table))
        assert dt.version() == written[table]["version"] == 0
        assert sorted(f.name for f in dt.schema().fields) == sorted(schema)
        n = sum(pq.ParquetFile(u.removeprefix("file://")).metadata.num_rows for u in dt.file_uris())
        assert n == written[table]["rows"]


def test_content_embeddings_are_real_and_complete(demo_tables) -> None:  # type: ignore[no-untyped-def]
    _, tables, _ = demo_tables
    pdf = tables.read("content_embeddings").frame.toPandas()
    by_signal = {s: g for s, g in pdf.groupby("signal")}
    assert set(by_signal) == {"text", "credits", "genres"}
    assert by_signal["text"]["item_id"].nunique() == DEMO_ITEMS
    assert 0.6 * DEMO_ITEMS < len(by_signal["credits"]) < DEMO_ITEMS  # Wikidata joins most, not all
    text = np.stack(by_signal["text"]["embedding"].to_numpy())
    assert text.shape == (DEMO_ITEMS, 384)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-4)
    assert np.std(text, axis=0).mean() > 0.01  # not a constant vector
    genres = np.stack(by_signal["genres"]["embedding"].to_numpy())
    assert genres.shape == (DEMO_ITEMS, len(GENRES)) and set(np.unique(genres)) <= {0.0, 1.0}
    assert (genres.sum(axis=1) >= 1).all()
    assert pdf.drop_duplicates(["item_id", "signal", "model_version"]).shape[0] == len(pdf)


def test_events_labels(demo_tables) -> None:  # type: ignore[no-untyped-def]
    _, tables, _ = demo_tables
    ev = tables.read("events").frame.toPandas()
    assert set(ev.columns) == set(schemas.EVENTS)
    assert ev["item_id"].max() <= DEMO_ITEMS
    assert 0.4 < ev["click"].mean() < 0.75 and 0.1 < ev["conv"].mean() < ev["click"].mean()
    assert (ev["conv"] <= ev["click"]).all()  # rating 5 implies rating >= 4


def test_inspect_reads_back_with_versions(demo_tables) -> None:  # type: ignore[no-untyped-def]
    cfg, tables, _ = demo_tables
    report = inspect_tables.run(cfg, tables)["tables"]
    assert report["items"] == {"rows": DEMO_ITEMS, "version": 0}
    assert report["signals"]["genres@genres-multihot-v1"] == DEMO_ITEMS
    assert {r.table for r in tables.reads} >= {"items", "events", "content_embeddings"}
