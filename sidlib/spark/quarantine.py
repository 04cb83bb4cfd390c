"""Rows a job cannot use go to ``rejected_rows`` with a reason, once per source version and job however
often the job reruns, or stop the job (``data_quality.on_bad_rows``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sidlib import schemas
from sidlib.config import DataQualityConfig
from sidlib.errors import InvalidInputError
from sidlib.spark.row_checks import REASON
from sidlib.spark.tables import Tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


def set_aside(tables: Tables, bad: "DataFrame", counts: dict[str, int], quality: DataQualityConfig,
                    job: str, version: int | None, signal: str) -> None:
    """Quarantine ``bad`` (rows with a :data:`REASON`) to ``rejected_rows`` once, or fail the job,
    by ``quality.on_bad_rows``; ``counts`` (by reason) is what the error or the log reports."""
    import pyspark.sql.functions as F

    summary = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    if quality.on_bad_rows == "fail":
        raise InvalidInputError(f"content_embeddings has bad rows for signal {signal!r}: {summary} "
                                f"(set data_quality.on_bad_rows=quarantine to set them aside)")
    out = bad.select(
        F.col("item_id").cast("bigint"), F.col("signal"), F.col("model_version"), F.col(REASON).alias("reason"),
        F.lit(job).alias("job"), F.lit(version).cast("bigint").alias("source_version"),
    )
    if tables.exists("rejected_rows"):  # a rerun over the same table version records nothing twice
        seen = tables.read_unpinned("rejected_rows")
        out = out.join(seen, [out[c].eqNullSafe(seen[c]) for c in schemas.REJECTED_ROWS], "left_anti")
    tables.write(out, "rejected_rows", mode="append")
    log.warning("quarantined %s rows of %s to rejected_rows: %s", sum(counts.values()), signal, summary)
