"""Config validation: clear one-line errors, before any engine starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidlib.config import SidlibConfig, load_config
from sidlib.errors import ConfigError

from conftest import REPO_ROOT


def test_defaults_and_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("engine:\n  name: spark\ntables:\n  format: parquet\n")
    cfg = load_config(conf, ["tables.root=/x/y", "ingest.max_items=5", "engine.spark_conf.spark.foo=bar"])
    assert cfg.engine.name == "spark"
    assert cfg.tables.format == "parquet"
    assert cfg.tables.root == "/x/y"
    assert cfg.ingest.max_items == 5
    assert cfg.engine.spark_conf == {"spark.foo": "bar"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["tables.fromat=delta"], "unknown config key 'tables.fromat' (did you mean 'format'?)"),
        (["ingest.max_items=lots"], "ingest.max_items must be an integer, got 'lots'"),
        (["engine.name=flink"], "engine.name must be one of 'local', 'spark', 'active', got 'flink'"),
        (["engine.delta_jars_from_maven=3"], "engine.delta_jars_from_maven must be true or false"),
        (["nonsense"], "must look like section.key=value"),
        (["tables.target_file_mb=0"], "tables.target_file_mb must be at least 1, got 0"),
        (["engine.memory_pool_mb=0"], "engine.memory_pool_mb must be at least 1, got 0"),
        (["ingest.logged_at=yesterday"], "ingest.logged_at is not an ISO timestamp: 'yesterday'"),
        (["evaluate.variants=[side]"], "evaluate.variants: the variants must include the 'id' baseline"),
        (["evaluate.variants=[id,side,side]"], "evaluate.variants: the variants name one twice"),
        (["evaluate.variants=[id,emb]"], "evaluate.variants: ranker variant must be one of"),
        (["evaluate.seeds=[]"], "evaluate.seeds is empty"),
        (["evaluate.epochs=0"], "evaluate.epochs must be at least 1, got 0"),
        (["evaluate.patience=-1"], "evaluate.patience must be at least 0, got -1"),
        (["evaluate.learning_rate=0"], "evaluate.learning_rate must be > 0"),
        (["evaluate.threads=0"], "evaluate.threads must be at least 1, got 0"),
        (["evaluate.confidence=1"], "evaluate.confidence must be in (0, 1)"),
        (["evaluate.max_rows={tran: 5}"], "evaluate.max_rows maps splits (train, valid, test)"),
        (["sequences.layout=flat"], "sequences.layout must be one of 'compact', 'materialized', got 'flat'"),
        (["sequences.events_per_bucket=0"], "sequences.events_per_bucket must be at least 1, got 0"),
        (["sequences.events_per_pass=0"], "sequences.events_per_pass must be at least 1, got 0"),
        (["refresh.refit_new_items=0"], "refresh.refit_new_items must be in (0, 1] or null, got 0"),
    ],
)
def test_bad_config_is_a_clear_error(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert message in str(err.value)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="config file not found: /no/such.yaml"):
        load_config("/no/such.yaml")


def _run_job(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "jobs" / "inspect_tables.py"), *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tables.fromat=delta"], "error: unknown config key 'tables.fromat' (did you mean 'format'?)"),
        (["ingest.max_items=lots"], "error: ingest.max_items must be an integer, got 'lots'"),
        (["--conf", "/no/such.yaml"], "error: config file not found: /no/such.yaml"),
    ],
)
def test_cli_bad_config_one_line_nonzero_exit(args: list[str], expected: str) -> None:
    result = _run_job(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [expected]


def test_cli_missing_table_one_line_nonzero_exit(tmp_path: Path) -> None:
    result = _run_job(f"tables.root={tmp_path}")
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == [f"error: table 'items' not found at {tmp_path.resolve() / 'items'}"]
    assert "Traceback" not in result.stderr


def test_demo_data_settings_live_in_the_demo_config() -> None:
    """Library defaults know nothing of the demo data; conf/demo.yaml says how its genres signal is
    reconstructed and which movies the evaluation report queries."""
    defaults = SidlibConfig()
    assert defaults.fit.signal_kinds == {} and defaults.evaluate.query_titles == []
    demo = load_config(REPO_ROOT / "conf" / "demo.yaml")
    assert demo.fit.signal_kinds == {"genres": "multilabel"} and "Toy Story" in demo.evaluate.query_titles
