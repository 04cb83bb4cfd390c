"""The whole pipeline in one engine session, in data-flow order (what ``make demo`` runs)."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from sidlib.config import SidlibConfig
from sidlib.jobs import export, ingest, inspect, refresh, sequences, train_preview

log = logging.getLogger(__name__)

STEPS: list[tuple[str, Callable[[SidlibConfig, Any], dict[str, Any]]]] = [
    ("ingest_demo_data", ingest.run),
    ("inspect_tables", inspect.run),
    ("refresh", refresh.run),  # fit a SID version when none is current, encode, switch the pointer
    ("build_sequences", sequences.run),
    ("export_training_data", export.run),
    ("train_preview", train_preview.run),  # a few Petastorm-fed torch batches
]


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    results = {}
    for name, step in STEPS:
        log.info("=== %s ===", name)
        start = time.perf_counter()
        results[name] = step(cfg, tables)
        results[name]["seconds"] = round(time.perf_counter() - start, 2)
    return {"job": "pipeline", "steps": results}
