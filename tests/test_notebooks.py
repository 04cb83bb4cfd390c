"""Notebooks run as plain Python (as on a laptop) against a test copy of the tables."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sidlib.spark import pointer

from conftest import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.py"))


def test_notebooks_are_databricks_source_format() -> None:
    assert NOTEBOOKS
    for nb in NOTEBOOKS:
        text = nb.read_text()
        assert text.startswith("# Databricks notebook source\n"), nb
        assert "# COMMAND ----------" in text, nb


@pytest.mark.parametrize("name", ["01_fit_and_encode.py"])
def test_notebook_runs_locally(pipeline, name: str) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    env = {**os.environ, "SIDLIB_CONF": str(REPO_ROOT / "conf" / "demo.yaml"),
           "SIDLIB_OVERRIDES": f"tables.root={cfg.tables.root} artifacts.root={cfg.artifacts.root} "
                               f"fit.bits=12 fit.signals=[text] ingest.cache_dir={cfg.ingest.cache_dir}"}
    result = subprocess.run([sys.executable, str(REPO_ROOT / "notebooks" / name)], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "items encoded with v1" in result.stdout
    assert pointer.current(tables, "text").sid_version == 1
