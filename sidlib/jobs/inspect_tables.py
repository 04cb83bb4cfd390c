"""Read the upstream tables back, pinned at their current versions: row counts, versions, schemas.

The operator's first check after ingest (and the demo's last step at this stage). A missing table is
a one-line error."""

from __future__ import annotations

from typing import Any

from sidlib.config import SidlibConfig

UPSTREAM = ("items", "events", "content_embeddings")


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    report = {}
    for table in UPSTREAM:
        df, version = tables.read(table)
        report[table] = {"rows": df.count(), "version": version}
    signals = tables.read("content_embeddings").frame.groupBy("signal", "model_version").count().collect()
    report["signals"] = {f"{r['signal']}@{r['model_version']}": r["count"] for r in sorted(signals, key=lambda r: r["signal"])}
    return {"job": "inspect_tables", "tables": report}
