"""The whole pipeline in one engine session, in data-flow order (what ``make demo`` runs): the jobs of
:data:`~sidlib.jobs.registry.PIPELINE`. ``refresh`` fits a SID version when none is current, encodes
and switches the pointer; ``train_preview`` feeds a few Petastorm batches to torch."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sidlib.cli import timed_summary
from sidlib.config import SidlibConfig
from sidlib.jobs.registry import PIPELINE
from sidlib.results import Result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineResult(Result):
    """Each job's summary (with its ``job_seconds``), by job name in the order they ran."""

    steps: dict[str, dict[str, Any]]

    @property
    def exit_status(self) -> int:
        return max((int(step["exit_status"]) for step in self.steps.values()), default=0)


def run(cfg: SidlibConfig, tables: Any) -> PipelineResult:
    from sidlib.jobs.entry import job_module

    steps = {}
    for name in PIPELINE:
        log.info("=== %s ===", name)
        steps[name] = timed_summary(job_module(name).run, cfg, tables)
    return PipelineResult(steps=steps)
