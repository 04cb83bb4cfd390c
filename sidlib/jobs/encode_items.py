"""encode_items: write the SIDs of ``encode.signal`` for artifact version ``encode.sid_version`` (default:
the signal's current version, else its newest) into ``item_sids``.

``encode.mode: full`` replaces the version's rows atomically (rerunning gives the same table);
``incremental`` encodes only items that have no SID for that version yet and upserts them, so SIDs of
already-encoded items never change between runs (:mod:`sidlib.steps.encode`)."""

from __future__ import annotations

from typing import Any

from sidlib.artifacts import ArtifactStore
from sidlib.config import SidlibConfig
from sidlib.steps.encode import EncodeResult, encode_version, resolve_artifact


def run(cfg: SidlibConfig, tables: Any) -> EncodeResult:
    store = ArtifactStore(cfg.artifacts.root)
    artifact = resolve_artifact(tables, store, cfg.encode.signal, cfg.encode.sid_version)
    return encode_version(tables, store, artifact, cfg.encode.mode, quality=cfg.data_quality,
                          lock_wait_s=cfg.encode.lock_wait_s, unique_cap=cfg.encode.cap_if_unique)
