"""Every job has an entry script under jobs/ and a console script, and both reach the same ``run``."""

import ast
import importlib
from pathlib import Path

from sidlib.jobs.entry import JOBS

from conftest import REPO_ROOT


def setup_py_jobs() -> list[str]:
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    (jobs,) = [node.value for node in tree.body if isinstance(node, ast.Assign)
               and any(isinstance(t, ast.Name) and t.id == "JOBS" for t in node.targets)]
    return list(ast.literal_eval(jobs))


def test_console_scripts_cover_every_job_script() -> None:
    scripts = sorted(p.stem for p in Path(REPO_ROOT, "jobs").glob("*.py"))
    assert sorted(setup_py_jobs()) == sorted(JOBS) == scripts


def test_every_job_module_has_a_run_function() -> None:
    for module in JOBS.values():
        assert callable(importlib.import_module(f"sidlib.jobs.{module}").run)
