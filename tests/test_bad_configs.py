"""Every job under bad configuration or damaged inputs: one ``error:`` line and exit 2, never a traceback.

Each case runs the real entry point (:func:`sidlib.cli.main`) in-process on the embedded engine against
a real, fitted and encoded copy of the demo tables, then checks the error names what is wrong. A
traceback would escape ``main`` and fail the case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sidlib.cli import EXIT_ERROR
from sidlib.jobs import encode_items, fit_quantizer
from sidlib.jobs.entry import run_job
from sidlib.spark.tables import Tables

from conftest import EMBEDDING_CACHE, demo_config


@pytest.fixture(scope="module")
def fitted(demo_tables, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A copy of the demo tables with artifact v1 fitted and encoded, plus spare files to point at."""

    _, demo, _ = demo_tables
    root = tmp_path_factory.mktemp("bad_configs")
    cfg = demo_config(root / "tables")
    cfg.artifacts.root = str(root / "artifacts")
    cfg.fit.bits = 12
    tables = Tables(demo.spark, cfg.tables)
    for table in ("items", "events", "content_embeddings"):
        tables.write(demo.read(table).frame, table)
    fit_quantizer.run(cfg, tables)
    encode_items.run(cfg, tables)
    (root / "a_file").write_text("not a directory\n")
    (root / "hand_kept.yaml").write_text("fit:\n  bits: 24\n")
    return root


def damaged_tables(root: Path, damage: str) -> Path:
    """A copy of the tables whose ``events`` Delta table is damaged one way."""
    copy = root / f"damaged_{damage}"
    if not copy.exists():
        shutil.copytree(root / "tables", copy)
        events = copy / "events"
        logs, parts = sorted((events / "_delta_log").glob("*.json")), sorted(events.rglob("*.parquet"))
        if damage == "first_log_deleted":
            logs[0].unlink()
        elif damage == "garbage_log_entry":
            (events / "_delta_log" / f"{len(logs):020d}.json").write_text("garbage{\n")
        elif damage == "part_file_truncated":
            parts[0].write_bytes(parts[0].read_bytes()[:100])
        elif damage == "part_file_deleted":
            parts[0].unlink()
    return copy


def damaged_artifacts(root: Path, damage: str) -> Path:
    """A copy of the artifact store whose v1 manifest is damaged one way."""
    copy = root / f"artifacts_{damage}"
    if not copy.exists():
        shutil.copytree(root / "artifacts", copy)
        manifest = copy / "v000001" / "manifest.json"
        content = json.loads(manifest.read_text())
        if damage == "truncated":
            manifest.write_text(manifest.read_text()[:40])
        elif damage == "no_files":
            manifest.write_text(json.dumps({k: v for k, v in content.items() if k != "files"}))
        elif damage == "empty_files":
            manifest.write_text(json.dumps({**content, "files": {}}))
    return copy


#: (job, overrides, a fragment the error line must contain); ``{root}`` is the fixture's directory.
CASES = [
    ("fit_quantizer", ["fit.bits=100"], "fit.bits must be in (0, 63]"),
    ("fit_quantizer", ["fit.bits=1000"], "fit.bits must be in (0, 63]"),
    ("fit_quantizer", ["fit.bits=.inf"], "fit.bits must be in (0, 63]"),
    ("fit_quantizer", ["fit.bits=64"], "fit.bits must be in (0, 63]"),
    ("fit_quantizer", ["fit.bits=60"], "at most 2**16"),
    ("fit_quantizer", ["fit.sample_rows=-1"], "fit.sample_rows must be at least 1"),
    ("fit_quantizer", ["fit.stat_partitions=0"], "fit.stat_partitions must be at least 1"),
    ("fit_quantizer", ["fit.seed=-1"], "fit.seed must be at least 0"),
    ("fit_quantizer", ["fit.params={foo: 1}"], "unexpected keyword argument 'foo'"),
    ("fit_quantizer", ["fit.params={dim: 5}"], "multiple values for keyword argument 'dim'"),
    ("fit_quantizer", ["fit.device=banana"], "fit.device must be"),
    ("fit_quantizer", ["fit.quantizer=rq_vae", "fit.vae_params={latent_dim: -1}"], "latent_dim >= 1"),
    ("fit_quantizer", ["fit.quantizer=dpca", "fit.vae=true", "fit.vae_params={latent_dim: -1}"], "latent_dim >= 1"),
    ("fit_quantizer", ["fit.holdout_fraction=-0.5"], "fit.holdout_fraction must be in [0, 1)"),
    ("fit_quantizer", ["fit.em_sample_fraction=0"], "fit.em_sample_fraction must be in (0, 1]"),
    ("fit_quantizer", ["fit.signals=[]"], "fit.signals is empty"),
    ("fit_quantizer", ["fit.quantizer=nope"], "unknown quantizer 'nope'"),
    ("fit_quantizer", ["data_quality.max_abs_value=0"], "data_quality.max_abs_value"),
    ("fit_quantizer", ["artifacts.root={root}/a_file"], "artifacts.root"),
    ("fit_quantizer", ["artifacts.root={root}/a_file/under"], "artifacts.root"),
    ("fit_quantizer", ["artifacts.root=/proc/sidlib"], "artifacts.root"),
    ("fit_quantizer", ["tables.root={root}/a_file"], "not found"),
    ("ingest_demo_data", ["ingest.max_items=0"], "ingest.max_items must be at least 1"),
    ("ingest_demo_data", ["ingest.max_items=-1"], "ingest.max_items must be at least 1"),
    ("ingest_demo_data", ["tables.root={root}/a_file"], "tables.root"),
    ("ingest_demo_data", ["tables.root={root}/a_file/under"], "tables.root"),
    ("ingest_demo_data", ["tables.root=/proc/sidlib"], "tables.root"),
    ("inspect_tables", ["tables.root={root}/a_file"], "not found"),
    ("encode_items", ["engine.arrow_batch_rows=-1"], "engine.arrow_batch_rows must be at least 1"),
    ("encode_items", ["encode.sid_version=999"], "artifact version 999 not found"),
    ("encode_items", ["encode.lock_wait_s=-1"], "encode.lock_wait_s"),
    ("encode_items", ["encode.sid_version=1", "artifacts.root={root}/artifacts_truncated"], "unreadable"),
    ("encode_items", ["encode.sid_version=1", "artifacts.root={root}/artifacts_no_files"], "lacks files"),
    ("encode_items", ["encode.sid_version=1", "artifacts.root={root}/artifacts_empty_files"], "has no checksum"),
    ("refresh", ["refresh.min_rollout_coverage=0"], "refresh.min_rollout_coverage"),
    ("rollback", ["rollback.signal=text", "rollback.release=true", "rollback.sid_version=1"],
     "takes no rollback.sid_version"),
    ("rollback", ["rollback.signal=nope"], "no current SID version"),
    ("rollback", ["encode.signal=credits"], "rollback.signal is required"),
    ("sweep", ["sweep.bits=0"], "sweep.bits must be in (0, 63]"),
    ("sweep", ["sweep.output={root}/hand_kept.yaml"], "was not written by the sweep job"),
    ("sweep", ["sweep.output={root}"], "is a directory"),
    ("build_sequences", ["sequences.history_length=1000000000"], "sequences.history_length must be at most"),
    ("build_sequences", ["sequences.history_length=0"], "sequences.history_length must be at least 1"),
    ("build_sequences", ["tables.root={root}/damaged_first_log_deleted"], "could not read or write a table"),
    ("build_sequences", ["tables.root={root}/damaged_garbage_log_entry"], "could not read or write a table"),
    ("build_sequences", ["tables.root={root}/damaged_part_file_truncated"], "could not read or write a table"),
    ("build_sequences", ["tables.root={root}/damaged_part_file_deleted"], "could not read or write a table"),
    ("export_training_data", ["export.valid_fraction=1.5"], "export.valid_fraction"),
    ("evaluate_ranker", ["evaluate.seeds=[]"], "evaluate.seeds is empty"),
]


@pytest.mark.parametrize(("job", "overrides", "message"), CASES,
                         ids=[f"{job}:{' '.join(o)}" for job, o, _ in CASES])
def test_bad_config_is_one_error_line_and_exit_2(fitted: Path, capsys: pytest.CaptureFixture[str], job: str,
                                                 overrides: list[str], message: str) -> None:
    for damage in ("first_log_deleted", "garbage_log_entry", "part_file_truncated", "part_file_deleted"):
        damaged_tables(fitted, damage)
    for damage in ("truncated", "no_files", "empty_files"):
        damaged_artifacts(fitted, damage)
    base = [f"tables.root={fitted / 'tables'}", f"artifacts.root={fitted / 'artifacts'}", "fit.bits=12",
            f"ingest.cache_dir={EMBEDDING_CACHE}", "ingest.max_items=120", f"sweep.output={fitted / 'best.yaml'}"]
    capsys.readouterr()
    rc = run_job(job, base + [o.replace("{root}", str(fitted)) for o in overrides])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == EXIT_ERROR and len(errors) == 1, err[-3000:]
    assert message in errors[0], errors[0]
    assert "Traceback" not in err
