"""Notebooks run as plain Python (as on a laptop) against a test copy of the tables."""

from __future__ import annotations

import os
import subprocess
import sys

from sidlib.spark import pointer

from conftest import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.py"))


def test_notebooks_are_databricks_source_format() -> None:
    assert NOTEBOOKS
    for nb in NOTEBOOKS:
        text = nb.read_text()
        assert text.startswith("# Databricks notebook source\n"), nb
        assert "# COMMAND ----------" in text, nb


def _run_notebook(name: str, cfg) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "SIDLIB_CONF": str(REPO_ROOT / "conf" / "demo.yaml"),
           "SIDLIB_OVERRIDES": f"tables.root={cfg.tables.root} artifacts.root={cfg.artifacts.root} "
                               f"fit.bits=12 fit.signals=[text] ingest.cache_dir={cfg.ingest.cache_dir} "
                               f"sequences.history_length=10"}
    result = subprocess.run([sys.executable, str(REPO_ROOT / "notebooks" / name)], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_fit_encode_then_sequences_notebooks_run_locally(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    assert "items encoded with v1" in _run_notebook("01_fit_and_encode.py", cfg).stdout
    assert pointer.current(tables, "text").sid_version == 1
    out = _run_notebook("02_sequences.py", cfg).stdout
    assert "SIDs of text v1" in out and "rows per split:" in out
    assert "'hist_item_ids': (256, 10)" in out
