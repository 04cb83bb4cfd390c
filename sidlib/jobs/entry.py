"""How every job is started: the console scripts (``sidlib-<job>``) and the entry scripts
(``python jobs/<job>.py``, also under ``spark-submit``), all through :func:`sidlib.cli.main`."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Callable, Sequence

from sidlib.cli import main
from sidlib.errors import ConfigError
from sidlib.jobs.registry import JOBS


def job_module(name: str) -> ModuleType:
    """The module of job ``name`` (one of :data:`~sidlib.jobs.registry.JOBS`)."""
    if name not in JOBS:
        raise ConfigError(f"unknown job {name!r}; jobs: {', '.join(JOBS)}")
    return importlib.import_module(f"sidlib.jobs.{name}")


def run_job(name: str, argv: Sequence[str] | None = None) -> int:
    """Run job ``name`` as a command line (``--conf``, overrides); returns the exit status."""
    module = job_module(name)
    return main(module.run, argv, description=module.__doc__ or "", name=name)


def run_script(path: str) -> int:
    """The body of every ``jobs/<job>.py``: the job named by the script's file name."""
    return run_job(Path(path).stem)


def _console_script(name: str) -> Callable[[], int]:
    def run() -> int:
        return run_job(name)
    run.__name__ = name
    return run


globals().update({name: _console_script(name) for name in JOBS})
