"""The per-version report of a freshly encoded SID version: :func:`report_version`."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sidlib.artifacts import Artifact, ArtifactStore
from sidlib.spark.local_values import item_titles, version_codes
from sidlib.version_report import write_version_report

#: Where the reports go, under ``artifacts.root`` (beside the versions, never inside their checksummed
#: directories): ``reports/v<NNNNNN>/report.md``.
REPORT_DIR = "reports"
#: Items whose codes the driver collects for a report (a hash-picked sample beyond): ~50 MB of codes.
MAX_REPORT_ITEMS = 2_000_000


def report_version(tables: Any, store: ArtifactStore, artifact: Artifact, *, previous: int | None = None,
                   changes: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Write the report of ``artifact``'s ``item_sids`` version (titles from ``items`` when it exists;
    churn against ``previous`` from ``changes``); returns its paths and headline figures (no report
    for a version without rows)."""
    item_ids, codes, total = version_codes(tables, artifact.version, MAX_REPORT_ITEMS)
    if not total:
        return {"markdown": None, "plots": [], "items": 0}
    has_titles = tables.exists("items")
    parts = (REPORT_DIR, f"v{artifact.version:06d}")
    with tempfile.TemporaryDirectory() as scratch:
        directory = store.local_root.joinpath(*parts) if store.local_root is not None else Path(scratch)
        report = write_version_report(directory, artifact.version, artifact.signal, codes,
                                      artifact.manifest["cardinalities"], item_ids,
                                      (lambda ids: item_titles(tables, ids)) if has_titles else (lambda ids: {}),
                                      total=total, previous=previous, changes=changes)
        placed = store.write_tree(directory, *parts)
    return {**report, "markdown": placed[report["markdown"]], "plots": [placed[p] for p in report["plots"]]}
