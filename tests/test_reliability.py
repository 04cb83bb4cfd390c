"""Reliability: bad input, bad tables, failures mid-job, concurrent runs, rollback, security.

Fault-injection section: every fault tried, and the outcome each test asserts, is listed in
FAULTS below (also printed by ``pytest -q tests/test_reliability.py -k fault_list -s``)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from sidlib import schemas
from sidlib.artifacts import ArtifactError, ArtifactStore
from sidlib.errors import ConfigError, InvalidInputError, TableError
from sidlib.jobs import encode_items, fit_quantizer, refresh
from sidlib.spark import encode as encode_udf
from sidlib.spark import pointer
from sidlib.spark.tables import Tables, quote_identifier

from conftest import REPO_ROOT

FAULTS = {
    "NaN / inf / wrong-dimension / null / duplicate embedding rows": "quarantined to rejected_rows with a reason, counted in the summary; fit continues on the valid rows",
    "same bad rows with on_bad_rows=fail": "one InvalidInputError naming the counts; no artifact written",
    "a broken newer row for an item that has a good older row": "the good row is used, the broken one rejected",
    "unknown signal": "TableError listing the signals present",
    "missing table": "TableError naming the table and path (CLI: one line, exit 2)",
    "wrong schema": "TableError naming the missing column",
    "empty table": "TableError, nothing written",
    "artifact version not found / checksum mismatch": "ArtifactError (tested in test_fit_encode_refresh.py)",
    "incompatible artifact (dim differs from data)": "ArtifactError before any write; item_sids unchanged",
    "encode UDF raises after 1 of several batches (full re-encode)": "item_sids unchanged (readers see the previous complete version); rerun writes each item exactly once",
    "refresh fails while encoding a new version": "pointer still on the old version, old rows intact; rerun completes and switches",
    "two refresh runs at once": "one consistent current version whose rows are complete; no duplicate rows; the loser reports lost_race or fails cleanly",
    "SQL injection through a table name or identifier": "ConfigError before any SQL runs",
    "table name pointing outside tables.root": "ConfigError",
    # round two (tests/test_adversarial_inputs.py, test_concurrent_jobs.py, test_bad_configs.py, test_pointer_race.py)
    "wrong-dimension rows in the first data file scanned (full encode, refresh)": "the most common dimension wins; the rows are quarantined, every other item encoded, no orphan artifact",
    "two full encodes of one new version at once (two processes, 5 rounds)": "they take turns on a per-version lock; each item written once, both exit 0",
    "new upstream model on only part of the items": "refresh keeps the current version (rollout_incomplete, with coverage) until refresh.min_rollout_coverage is met",
    "null item_id, null signal / model_version, all-zero vector, values near 3e38": "quarantined with a reason (the encode UDF and the SQL checks agree); the fit's metrics stay finite",
    "rerun over the same bad rows": "rejected_rows gains no copies",
    "the same rollback run twice, then a scheduled refresh": "already_held, no flip back; refresh reports held and neither refits nor switches until rollback.release=true",
    "two concurrent pointer switches, or first pointer creations (two processes, 5 rounds)": "one wins, the other lost_race; no traceback; both signals' pointers kept",
    "two rollback jobs at once (two processes, 5 rounds)": "one rolled_back, the other already_held; both exit 0, the pointer held at the target",
    "out-of-range sizes (fit.bits 64/100/inf, 2**21-code levels, history_length 10^9)": "one error: line before any work (no memory exhaustion)",
    "bad settings of every job (49 cases: negative counts, unknown params, bad device, unwritable roots)": "one error: line, exit 2",
    "damaged tables: deleted first Delta log entry, garbage log entry, truncated or deleted part file": "one error: line naming the engine's failure, exit 2, nothing written",
    "damaged manifest: truncated, no files, empty files": "ArtifactError (one error: line); no quantizer is loaded unchecked",
    "symlink under tables.root pointing elsewhere": "ConfigError before any write; nothing lands outside the root",
    "sweep.output naming a file the sweep did not write": "ConfigError before any work; the file is untouched",
}


def test_fault_list() -> None:
    for fault, outcome in FAULTS.items():
        print(f"- {fault}: {outcome}")
    assert len(FAULTS) >= 10


def test_readme_lists_every_fault_with_its_outcome() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Operating the pipeline"):]
    missing = [fault for fault, outcome in FAULTS.items() if f"| {fault} | {outcome} |" not in section]
    assert not missing, missing


def _append_embeddings(tables: Tables, rows: list[dict]) -> None:  # type: ignore[type-arg]
    df = pd.DataFrame(rows)[list(schemas.CONTENT_EMBEDDINGS)]
    tables.write(tables.spark.createDataFrame(df, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                 "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode="append")


def _bad_rows(good: np.ndarray) -> list[dict]:  # type: ignore[type-arg]
    nan, inf = good.copy(), good.copy()
    nan[3], inf[7] = np.nan, np.inf
    base = {"signal": "text", "model_version": "all-MiniLM-L6-v2", "logged_at": pd.Timestamp("2026-01-01")}
    return [
        {**base, "item_id": 9001, "embedding": nan},
        {**base, "item_id": 9002, "embedding": inf},
        {**base, "item_id": 9003, "embedding": good[:383]},
        {**base, "item_id": 9004, "embedding": None},
        {**base, "item_id": 1, "embedding": good, "logged_at": pd.Timestamp("2025-06-01")},  # older duplicate
        {**base, "item_id": 2, "embedding": nan, "logged_at": pd.Timestamp("2026-06-01")},  # newer but broken
    ]


def _first_text_embedding(tables: Tables) -> np.ndarray:
    row = tables.read_unpinned("content_embeddings").where("signal = 'text' AND item_id = 1").collect()[0]
    return np.asarray(row["embedding"], dtype=np.float32)


def test_bad_rows_are_quarantined_with_reasons(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    good = _first_text_embedding(tables)
    _append_embeddings(tables, _bad_rows(good))
    summary = fit_quantizer.run(cfg, tables)
    assert summary["rejected"]["text"] == {"non-finite value": 3, "wrong dimension": 1, "null embedding": 1, "duplicate": 1}
    manifest = ArtifactStore(cfg.artifacts.root).get(1).manifest
    assert manifest["source"]["valid_rows"] == 120
    rejected = tables.read_unpinned("rejected_rows").toPandas().sort_values(["item_id", "reason"])
    assert list(zip(rejected["item_id"], rejected["reason"])) == [
        (1, "duplicate"), (2, "non-finite value"), (9001, "non-finite value"), (9002, "non-finite value"),
        (9003, "wrong dimension"), (9004, "null embedding")]
    assert set(rejected["job"]) == {"fit_quantizer"} and set(rejected["source_version"]) == {1}
    tables.check_schema("rejected_rows", schemas.REJECTED_ROWS)
    # The item with a broken newer row is still encoded, from its good row.
    encode_items.run(cfg, tables)
    sids = tables.read_unpinned("item_sids").toPandas()
    assert {1, 2} <= set(sids["item_id"]) and not ({9001, 9002, 9003, 9004} & set(sids["item_id"]))


def test_bad_rows_without_duplicates_are_counted_from_one_profiling_scan(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    bad = [row for row in _bad_rows(_first_text_embedding(tables)) if row["item_id"] > 9000]
    _append_embeddings(tables, bad)
    summary = fit_quantizer.run(cfg, tables)
    assert summary["rejected"]["text"] == {"non-finite value": 2, "wrong dimension": 1, "null embedding": 1}
    assert ArtifactStore(cfg.artifacts.root).get(1).manifest["source"]["valid_rows"] == 120
    rejected = tables.read_unpinned("rejected_rows").toPandas().sort_values("item_id")
    assert list(zip(rejected["item_id"], rejected["reason"])) == [
        (9001, "non-finite value"), (9002, "non-finite value"), (9003, "wrong dimension"), (9004, "null embedding")]


def test_encode_checks_rows_in_its_udf_and_quarantines_what_it_dropped(pipeline, caplog) -> None:  # type: ignore[no-untyped-def]
    """A full encode skips the validation scan (the UDF drops bad rows as it encodes); the rows it
    dropped are then classified and quarantined exactly as a checked read would have."""
    cfg, tables = pipeline
    fit_quantizer.run(cfg, tables)
    with caplog.at_level("INFO", logger="sidlib.spark.embeddings"):
        clean = encode_items.run(cfg, tables)
    assert "checked while encoding" in caplog.text and clean["rejected"] == {}
    assert not tables.exists("rejected_rows")
    bad = [row for row in _bad_rows(_first_text_embedding(tables)) if row["item_id"] > 9000]
    _append_embeddings(tables, bad)
    summary = encode_items.run(cfg, tables)
    assert summary["rejected"] == {"non-finite value": 2, "wrong dimension": 1, "null embedding": 1}
    assert summary["items_encoded"] == clean["items_encoded"]
    rejected = tables.read_unpinned("rejected_rows").toPandas().sort_values("item_id")
    assert list(zip(rejected["item_id"], rejected["reason"], rejected["job"])) == [
        (9001, "non-finite value", "encode_items"), (9002, "non-finite value", "encode_items"),
        (9003, "wrong dimension", "encode_items"), (9004, "null embedding", "encode_items")]
    sids = set(tables.read_unpinned("item_sids").toPandas()["item_id"])
    assert not {9001, 9002, 9003, 9004} & sids


def test_bad_rows_fail_fast_policy(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    _append_embeddings(tables, _bad_rows(_first_text_embedding(tables)))
    strict = dataclasses.replace(cfg, data_quality=dataclasses.replace(cfg.data_quality, on_bad_rows="fail"))
    with pytest.raises(InvalidInputError, match=r"bad rows for signal 'text': 1 duplicate, 3 non-finite value, 1 null embedding, 1 wrong dimension"):
        fit_quantizer.run(strict, tables)
    assert ArtifactStore(cfg.artifacts.root).versions() == []
    assert not tables.exists("rejected_rows")


def test_unknown_signal_wrong_schema_empty_and_missing_tables(pipeline, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    with pytest.raises(TableError, match=r"signal 'audio' not in content_embeddings \(found: credits, genres, text\)"):
        fit_quantizer.run(dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, signals=["audio"])), tables)
    other = Tables(tables.spark, dataclasses.replace(cfg.tables, root=str(tmp_path / "other")))
    with pytest.raises(TableError, match="table 'content_embeddings' not found"):
        fit_quantizer.run(cfg, other)
    wrong = {k: v for k, v in schemas.CONTENT_EMBEDDINGS.items() if k != "logged_at"}
    other.write(tables.read("content_embeddings").frame.drop("logged_at"), "content_embeddings", expected=wrong)
    with pytest.raises(TableError, match=r"missing columns \['logged_at'\]"):
        fit_quantizer.run(cfg, other)
    other.write(tables.read("content_embeddings").frame.limit(0), "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS)
    with pytest.raises(TableError, match=r"signal 'text' not in content_embeddings \(found: no rows\)"):
        fit_quantizer.run(cfg, other)
    assert ArtifactStore(cfg.artifacts.root).versions() == []


def test_incompatible_artifact_dim_is_refused_before_writing(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    fit_quantizer.run(cfg, tables)
    encode_items.run(cfg, tables)
    before = tables.version("item_sids")
    short = tables.read_unpinned("content_embeddings").where("signal = 'text'").toPandas()
    short["embedding"] = [e[:256] for e in short["embedding"]]
    short["logged_at"] = pd.Timestamp("2026-03-01")
    tables.write(tables.spark.createDataFrame(short, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                 "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS)
    with pytest.raises(ArtifactError, match="artifact v1 expects dim 384 but text embeddings have dim 256"):
        encode_items.run(cfg, tables)
    assert tables.version("item_sids") == before


class Fault:
    """Counts encode-UDF batches in a file (UDF closures are pickled into each task, so an in-memory
    counter would restart per task; tasks run in parallel, so each batch appends one byte) and raises
    once more than ``fail_after`` batches were encoded."""

    def __init__(self, folder):  # type: ignore[no-untyped-def]
        self.counter, self.limit = folder / "batches", folder / "fail_after"
        self.arm(None)

    def arm(self, fail_after: int | None) -> None:
        self.counter.write_bytes(b"")
        self.limit.write_text(str(-1 if fail_after is None else fail_after))

    @property
    def batches(self) -> int:
        return self.counter.stat().st_size


@pytest.fixture
def failing_encoder(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    """Make the encode UDF raise after k Arrow batches, as if an executor died part-way."""
    real = encode_udf.sid_columns
    fault = Fault(tmp_path)
    counter, limit = fault.counter, fault.limit

    def flaky(quantizer, embeddings):  # type: ignore[no-untyped-def]
        with counter.open("ab") as fh:
            fh.write(b"x")
        fail_after = int(limit.read_text())
        if 0 <= fail_after < counter.stat().st_size:
            raise RuntimeError("injected fault: executor lost")
        return real(quantizer, embeddings)

    monkeypatch.setattr(encode_udf, "sid_columns", flaky)
    return fault


def _many_batches(tables: Tables, files: int = 6) -> None:
    """Rewrite content_embeddings as several files: Sail hands each partition to a pandas UDF as one
    Arrow batch (it ignores maxRecordsPerBatch), so this is how a job gets several batches."""
    pdf = tables.read_unpinned("content_embeddings").toPandas().sort_values(["signal", "item_id"])
    for i, chunk in enumerate(np.array_split(pdf, files)):
        df = tables.spark.createDataFrame(chunk[list(schemas.CONTENT_EMBEDDINGS)], schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS))
        tables.write(df, "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode="overwrite" if i == 0 else "append")


def test_encode_failure_mid_job_leaves_previous_version_and_rerun_is_exactly_once(pipeline, failing_encoder) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    _many_batches(tables)
    fit_quantizer.run(cfg, tables)
    encode_items.run(cfg, tables)
    before_version = tables.version("item_sids")
    before = tables.read_unpinned("item_sids").toPandas().sort_values("item_id").reset_index(drop=True)
    failing_encoder.arm(fail_after=1)
    with pytest.raises(Exception, match="injected fault"):
        encode_items.run(cfg, tables)
    assert failing_encoder.batches > 1  # it really failed part-way, after encoding a batch
    assert tables.version("item_sids") == before_version
    pd.testing.assert_frame_equal(tables.read_unpinned("item_sids").toPandas().sort_values("item_id").reset_index(drop=True), before)
    failing_encoder.arm(None)
    encode_items.run(cfg, tables)
    after = tables.read_unpinned("item_sids").toPandas()
    assert len(after) == after["item_id"].nunique() == 120
    pd.testing.assert_frame_equal(after.sort_values("item_id").reset_index(drop=True), before)


def test_refresh_failure_keeps_pointer_and_rerun_completes(pipeline, failing_encoder) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    _many_batches(tables)
    refresh.run(cfg, tables)
    emb = tables.read_unpinned("content_embeddings").where("signal = 'text'").toPandas()
    emb = emb.assign(model_version="m2", logged_at=pd.Timestamp("2026-02-01"), embedding=[np.roll(e, 3) for e in emb["embedding"]])
    for chunk in np.array_split(emb, 4):  # several files, so the encode sees several batches
        tables.write(tables.spark.createDataFrame(chunk, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                     "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode="append")
    failing_encoder.arm(fail_after=1)
    with pytest.raises(Exception, match="injected fault"):
        refresh.run(cfg, tables)
    assert failing_encoder.batches > 1  # it really failed part-way, after encoding a batch
    assert pointer.current(tables, "text").sid_version == 1
    assert tables.read_unpinned("item_sids").where("sid_version = 1").count() == 120
    failing_encoder.arm(None)
    result = refresh.run(cfg, tables)["signals"][0]
    assert result["action"] == "refit" and result["previous_version"] == 1
    now = pointer.current(tables, "text")
    assert now.sid_version == result["sid_version"] and now.model_version == "m2"
    rows = tables.read_unpinned("item_sids").where(f"sid_version = {now.sid_version}").toPandas()
    assert len(rows) == rows["item_id"].nunique() == 120


def test_two_concurrent_refreshes_end_consistent(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    overrides = [f"tables.root={cfg.tables.root}", f"artifacts.root={cfg.artifacts.root}", "fit.bits=12",
                 f"ingest.cache_dir={cfg.ingest.cache_dir}"]
    command = [sys.executable, str(REPO_ROOT / "jobs" / "refresh.py"), *overrides]

    def launch(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(launch, range(2)))
    for result in results:
        assert result.returncode in (0, 2), result.stderr[-2000:]
        if result.returncode == 2:  # a clean failure is one line, never a traceback
            assert [l for l in result.stderr.splitlines() if l.startswith("error:")] and "Traceback" not in result.stderr
    assert any(r.returncode == 0 for r in results)
    current = pointer.current(tables, "text")
    assert current is not None and current.sid_version in ArtifactStore(cfg.artifacts.root).versions()
    sids = tables.read_unpinned("item_sids").toPandas()
    for version, rows in sids.groupby("sid_version"):
        assert len(rows) == rows["item_id"].nunique() == 120, f"version {version} incomplete or duplicated"
    assert (sids["sid_version"] == current.sid_version).sum() == 120


def test_identifiers_and_paths_are_validated(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    with pytest.raises(ConfigError, match="tables.item_sids must be a plain identifier"):
        dataclasses.replace(cfg.tables, item_sids="x` USING delta; DROP TABLE y; --")
    with pytest.raises(ConfigError, match="tables.events must be a plain identifier"):
        dataclasses.replace(cfg.tables, events="../../etc")
    with pytest.raises(ConfigError, match="invalid identifier"):  # names built in code are checked again
        quote_identifier("x`; --")
    with pytest.raises(ArtifactError, match="invalid artifact version"):
        ArtifactStore(cfg.artifacts.root).get(-1)
