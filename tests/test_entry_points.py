"""Every job of the registry has an entry script under jobs/, a console script and a ``run``, and
nothing else is registered anywhere."""

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

from sidlib.jobs.registry import JOBS, PIPELINE

from conftest import REPO_ROOT


def test_entry_scripts_are_exactly_the_registered_jobs() -> None:
    assert sorted(p.stem for p in Path(REPO_ROOT, "jobs").glob("*.py")) == sorted(JOBS)


def test_console_scripts_are_exactly_the_registered_jobs() -> None:
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")
               if ep.value.startswith("sidlib.")}
    assert scripts == {f"sidlib-{job.replace('_', '-')}": f"sidlib.jobs.entry:{job}" for job in JOBS}


def test_every_job_module_has_a_run_function_and_the_pipeline_only_registered_jobs() -> None:
    for job in JOBS:
        assert callable(importlib.import_module(f"sidlib.jobs.{job}").run)
    assert set(PIPELINE) <= set(JOBS)


def test_an_entry_script_runs_its_job() -> None:
    """``python jobs/<job>.py --help`` reaches the job named by the file (its docstring as description)."""
    out = subprocess.run([sys.executable, str(REPO_ROOT / "jobs" / "rollback.py"), "--help"], capture_output=True,
                         text=True, cwd=REPO_ROOT, check=True).stdout
    assert "rollback" in out and "--conf" in out
