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


def _overrides(cfg) -> str:  # type: ignore[no-untyped-def]
    return (f"tables.root={cfg.tables.root} artifacts.root={cfg.artifacts.root} fit.bits=12 fit.signals=[text] "
            f"ingest.cache_dir={cfg.ingest.cache_dir} sequences.history_length=10")


def _run_notebook(name: str, cfg, *, widgets: bool = False) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """The notebook as plain Python with its config in the environment, or (``widgets``) as a notebook
    task whose job parameters fill the ``conf`` and ``overrides`` widgets, with no config in the environment."""
    notebook, conf = str(REPO_ROOT / "notebooks" / name), str(REPO_ROOT / "conf" / "demo.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDLIB_")}
    if widgets:
        command = [sys.executable, str(REPO_ROOT / "tests" / "helpers" / "stand_in_dbutils.py"), notebook,
                   f"conf={conf}", f"overrides={_overrides(cfg)}"]
    else:
        command, env = [sys.executable, notebook], {**env, "SIDLIB_CONF": conf, "SIDLIB_OVERRIDES": _overrides(cfg)}
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_notebook_widgets_carry_the_config(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(REPO_ROOT / "tests" / "helpers"))
    from stand_in_dbutils import StandInDbutils

    from sidlib.notebook import notebook_arguments

    monkeypatch.setenv("SIDLIB_CONF", "conf/env.yaml")
    monkeypatch.setenv("SIDLIB_OVERRIDES", "fit.bits=8")
    assert notebook_arguments() == ("conf/env.yaml", ["fit.bits=8"])
    job = StandInDbutils({"conf": "conf/demo.yaml", "overrides": "tables.root=/tmp/t 'fit.signals=[text, credits]'"})
    assert notebook_arguments(job) == ("conf/demo.yaml", ["tables.root=/tmp/t", "fit.signals=[text, credits]"])
    interactive = StandInDbutils({})  # no job parameters: the widgets appear with the environment's values
    assert notebook_arguments(interactive) == ("conf/env.yaml", ["fit.bits=8"])
    assert interactive.widgets.defined == {"conf": "conf/env.yaml", "overrides": "fit.bits=8"}


def test_fit_encode_then_sequences_notebooks_run_locally(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    assert "items encoded with v1" in _run_notebook("01_fit_and_encode.py", cfg, widgets=True).stdout
    assert pointer.current(tables, "text").sid_version == 1
    out = _run_notebook("02_sequences.py", cfg).stdout
    assert "SIDs of text v1" in out and "rows per split:" in out
    assert "'hist_item_ids': (256, 10)" in out
