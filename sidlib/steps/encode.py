"""Write the SIDs of one artifact version into ``item_sids``: :func:`encode_version`.

``full`` mode replaces the version's rows atomically (rerunning gives the same table);
``incremental`` encodes only items that have no SID for that version yet and upserts them, so SIDs
of already-encoded items never change between runs."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from sidlib import locks
from sidlib.artifacts import Artifact, ArtifactError, ArtifactStore
from sidlib.config import DataQualityConfig
from sidlib.results import Result
from sidlib.sid import hash_size
from sidlib.spark import pointer
from sidlib.spark.embeddings import RowsToEncode, read_for_encode, read_signal
from sidlib.spark.encode import write_version
from sidlib.spark.fused_rows import FUSION_SIGNAL, read_fused
from sidlib.spark.sid_items import write_sid_items

log = logging.getLogger(__name__)

Mode = Literal["full", "incremental"]


@dataclass(frozen=True)
class EncodeResult(Result):
    """What one encode wrote: items it encoded, items the version now has, rows it set aside."""

    signal: str
    sid_version: int
    mode: str
    items_encoded: int
    items_in_version: int
    item_sids_version: int | None
    rejected: dict[str, int]
    encode_seconds: float
    #: The version whose codes items kept unless clearly beaten (``None``: every item encoded afresh).
    stable_from: int | None = None
    #: ``encode.unique``: the ``sid_items`` layout and counts (:mod:`sidlib.spark.sid_items`).
    unique: dict[str, Any] | None = None


def resolve_artifact(tables: Any, store: ArtifactStore, signal: str, version: int | None) -> Artifact:
    """The artifact to encode with: explicit version, else the signal's current, else its newest."""
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


def encode_version(tables: Any, store: ArtifactStore, artifact: Artifact, mode: Mode, *,
                   quality: DataQualityConfig, lock_wait_s: float, source_version: int | None = None,
                   stable_from: tuple[int, float] | None = None, unique_cap: int | None = None) -> EncodeResult:
    """Encode with ``artifact`` into its ``item_sids`` version. Runs writing one version take turns
    (a lock per version under the store's root, waiting up to ``lock_wait_s``): two writers of a new
    version would otherwise both append every row, and two incremental runs would both add the same
    missing items. ``stable_from``: ``(previous version, margin)`` for a full encode after a warm
    start, whose items keep their codes of the previous version unless the new ones reconstruct
    them better by more than the margin (:mod:`sidlib.stability`). ``unique_cap`` (``encode.unique``):
    then also number the items that share a SID in ``sid_items``, at most ``unique_cap`` per SID."""
    hash_size(artifact.manifest["cardinalities"])  # the packed SID must fit int64: fail before any work
    lock = store.lock_file(f"item_sids-v{artifact.version:06d}.lock")
    with locks.exclusive(lock, f"encoding item_sids version {artifact.version}", lock_wait_s):
        result = _encode_locked(tables, store, artifact, mode, quality, source_version,
                                None if mode == "incremental" else stable_from)
        if unique_cap is None:
            return result
        unique = write_sid_items(tables, artifact.version, artifact.manifest["cardinalities"], unique_cap,
                                 sid_partitioning(tables.cfg.format))
        log.info("sid_items v%d: %d items, %d SIDs shared, dedup up to %d", artifact.version, unique["items"],
                 unique["shared_sids"], unique["max_dedup"])
        return dataclasses.replace(result, unique=unique)


def rows_to_encode(tables: Any, artifact: Artifact, mode: Mode, quality: DataQualityConfig,
                   source_version: int | None) -> RowsToEncode:
    """The rows ``artifact`` encodes, from the model version it was fitted on."""
    job = "encode_items"
    if artifact.signal == FUSION_SIGNAL:
        fused, _ = read_fused(tables, artifact.manifest["fit"]["signals"], quality=quality, job=job,
                              model_versions=json.loads(artifact.model_version), source_version=source_version)
        return RowsToEncode.checked(fused)
    if mode == "full":  # a full encode reads every row once anyway: its UDF checks the rows
        return read_for_encode(tables, artifact.signal, model_version=artifact.model_version,
                               dim=artifact.manifest["dim"], quality=quality, job=job, source_version=source_version)
    return RowsToEncode.checked(read_signal(tables, artifact.signal, model_version=artifact.model_version,
                                            quality=quality, job=job, source_version=source_version))


def _encode_locked(tables: Any, store: ArtifactStore, artifact: Artifact, mode: Mode, quality: DataQualityConfig,
                   source_version: int | None, stable_from: tuple[int, float] | None) -> EncodeResult:
    start = time.perf_counter()
    rows = rows_to_encode(tables, artifact, mode, quality, source_version)
    if rows.dim != artifact.manifest["dim"]:
        raise ArtifactError(f"artifact v{artifact.version} expects dim {artifact.manifest['dim']} but "
                            f"{artifact.signal} embeddings have dim {rows.dim}")
    encoded, total, version = write_version(
        tables, rows.frame, root=store.root, version=artifact.version, signal=artifact.signal, dim=rows.dim,
        max_abs_value=quality.max_abs_value, incremental=mode == "incremental",
        partition_by=sid_partitioning(tables.cfg.format),
        stable_from=None if stable_from is None else (stable_from[0], len(artifact.manifest["cardinalities"]),
                                                      stable_from[1]))
    data = rows.settle(encoded)
    log.info("encoded %d items of %s with v%d (%s); item_sids now v%s", encoded, artifact.signal,
             artifact.version, mode, version)
    return EncodeResult(signal=artifact.signal, sid_version=artifact.version, mode=mode, items_encoded=encoded,
                        items_in_version=total, item_sids_version=version, rejected=data.rejected,
                        encode_seconds=round(time.perf_counter() - start, 2),
                        stable_from=None if stable_from is None else stable_from[0])
