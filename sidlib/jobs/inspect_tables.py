"""Read the upstream tables back, pinned at their current versions: row counts, versions, schemas.

The operator's first check after ingest (and the demo's last step at this stage). A missing table is
a one-line error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidlib import schemas
from sidlib.config import SidlibConfig
from sidlib.results import Result
from sidlib.spark.local_values import signal_counts, table_counts


@dataclass(frozen=True)
class InspectResult(Result):
    """Per upstream table its rows and version read, with the ``content_embeddings`` rows per
    ``signal@model_version`` under ``tables["signals"]``."""

    tables: dict[str, Any]


def run(cfg: SidlibConfig, tables: Any) -> InspectResult:
    return InspectResult(tables={**table_counts(tables, schemas.UPSTREAM), "signals": signal_counts(tables)})
