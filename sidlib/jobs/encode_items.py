"""encode_items: write the SIDs of one signal for one artifact version into ``item_sids``.

``full`` mode replaces the version's partition atomically (rerunning gives the same table);
``incremental`` encodes only items that have no SID for that version yet (anti-join) and upserts
them, so SIDs of already-encoded items never change between runs."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sidlib import locks, schemas
from sidlib.artifacts import Artifact, ArtifactError, ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.sid import hash_size
from sidlib.spark import pointer
from sidlib.spark.embeddings import RowsToEncode, read_for_encode, read_signal
from sidlib.spark.fused_rows import FUSION_SIGNAL, read_fused
from sidlib.spark.encode import encode_batches
from sidlib.spark.tables import sid_version_is

log = logging.getLogger(__name__)

#: Lock files of the runs writing ``item_sids`` versions, under ``artifacts.root``.
LOCK_DIR = ".locks"


def resolve_artifact(cfg: SidlibConfig, tables: Any, signal: str, version: int | None) -> Artifact:
    """The artifact to encode with: explicit version, else the signal's current, else its newest."""
    store = ArtifactStore(cfg.artifacts.root)
    if version is None:
        current = pointer.current(tables, signal)
        version = current.sid_version if current else None
    if version is None:
        latest = store.latest(signal)
        if latest is None:
            raise ArtifactError(f"no artifact for signal {signal!r} under {store.root}: run fit_quantizer first")
        return latest
    artifact = store.get(version)
    if artifact.signal != signal:
        raise ArtifactError(f"artifact v{version} was fitted for signal {artifact.signal!r}, not {signal!r}")
    return artifact


def sid_partitioning(table_format: str) -> list[str]:
    """Physical partition columns of ``item_sids``. Parquet needs ``sid_version`` directories to replace
    one version. Delta replaces a version by predicate and skips other versions' files by their column
    statistics (each encode writes files of one version), so it is not partitioned: Sail's partitioned
    writer buffers every row it writes, which made the encode job's memory grow with the row count."""
    return ["sid_version"] if table_format == "parquet" else []


def encode_signal(cfg: SidlibConfig, tables: Any, artifact: Artifact, mode: str, *,
                  source_version: int | None = None) -> dict[str, Any]:
    """Encode with ``artifact`` into its ``item_sids`` version. Runs writing one version take turns
    (a lock per version under ``artifacts.root``): two writers of a new version would otherwise both
    append every row, and two incremental runs would both add the same missing items."""
    hash_size(artifact.manifest["cardinalities"])  # the packed SID must fit int64: fail before any work
    lock = ArtifactStore(cfg.artifacts.root).root / LOCK_DIR / f"item_sids-v{artifact.version:06d}.lock"
    with locks.exclusive(lock, f"encoding item_sids version {artifact.version}", cfg.encode.lock_wait_s):
        return _encode_locked(cfg, tables, artifact, mode, source_version)


def _encode_locked(cfg: SidlibConfig, tables: Any, artifact: Artifact, mode: str,
                   source_version: int | None) -> dict[str, Any]:
    start = time.perf_counter()
    quality, job = cfg.data_quality, "encode_items"
    if artifact.signal == FUSION_SIGNAL:
        fused, _ = read_fused(tables, artifact.manifest["fit"]["signals"], quality=quality, job=job,
                              model_versions=json.loads(artifact.model_version), source_version=source_version)
        rows = RowsToEncode.checked(fused)
    elif mode == "full":  # a full encode reads every row once anyway: its UDF checks the rows
        rows = read_for_encode(tables, artifact.signal, model_version=artifact.model_version,
                               dim=artifact.manifest["dim"], quality=quality, job=job, source_version=source_version)
    else:
        rows = RowsToEncode.checked(read_signal(tables, artifact.signal, model_version=artifact.model_version,
                                                quality=quality, job=job, source_version=source_version))
    if rows.dim != artifact.manifest["dim"]:
        raise ArtifactError(f"artifact v{artifact.version} expects dim {artifact.manifest['dim']} but "
                            f"{artifact.signal} embeddings have dim {rows.dim}")
    frame = rows.frame
    partition = {"sid_version": artifact.version}
    before = 0
    if mode == "incremental" and tables.exists("item_sids"):
        existing = tables.read("item_sids").frame.where(sid_version_is(artifact.version)).select("item_id")
        before = existing.count()
        frame = frame.join(existing, "item_id", "left_anti")
    encoded = frame.mapInArrow(encode_batches(str(ArtifactStore(cfg.artifacts.root).root), artifact.version,
                                               artifact.signal, rows.dim, cfg.data_quality.max_abs_value),
                               schemas.ddl(schemas.ITEM_SIDS))
    layout = sid_partitioning(cfg.tables.format)
    if mode == "incremental":
        version = tables.upsert(encoded, "item_sids", ["item_id", "sid_version"],
                                partition_by=layout)
    else:
        version = tables.overwrite_partition(encoded, "item_sids", partition,
                                             partition_by=layout)
    total = tables.read_unpinned("item_sids").where(sid_version_is(artifact.version)).count()
    data = rows.settle(total - before)
    summary = {"signal": artifact.signal, "sid_version": artifact.version, "mode": mode,
               "items_encoded": total - before, "items_in_version": total, "item_sids_version": version,
               "rejected": data.rejected, "seconds": round(time.perf_counter() - start, 2)}
    log.info("encoded %d items of %s with v%d (%s); item_sids now v%s", total - before, artifact.signal,
             artifact.version, mode, version)
    return summary


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    artifact = resolve_artifact(cfg, tables, cfg.encode.signal, cfg.encode.sid_version)
    return {"job": "encode_items", **encode_signal(cfg, tables, artifact, cfg.encode.mode)}
