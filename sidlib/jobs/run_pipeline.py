"""The whole pipeline in one engine session, in data-flow order (what ``make demo`` runs): the jobs of
:data:`~sidlib.jobs.registry.PIPELINE`. ``refresh`` fits a SID version when none is current, encodes
and switches the pointer; ``train_preview`` feeds a few Petastorm batches to torch."""

from __future__ import annotations

import logging
import time
from typing import Any

from sidlib.config import SidlibConfig
from sidlib.jobs.registry import PIPELINE
from sidlib.results import plain

log = logging.getLogger(__name__)


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    from sidlib.jobs.entry import job_module

    results = {}
    for name in PIPELINE:
        log.info("=== %s ===", name)
        start = time.perf_counter()
        results[name] = {**plain(job_module(name).run(cfg, tables)), "job_seconds": round(time.perf_counter() - start, 2)}
    return {"steps": results}
