"""The encode UDF: SIDs for Arrow batches of embeddings, the artifact loaded once per worker.

Used with ``mapInPandas`` (an iterator of batches per task), so the quantizer is deserialised and its
checksum verified once per worker process, not per batch or per row; all work per batch is
vectorised (``encode`` in matmul form, mixed-radix packing in numpy)."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from sidlib.artifacts import ArtifactStore
from sidlib.quantizers import Quantizer
from sidlib.sid import pack, prefix_ngrams


@lru_cache(maxsize=4)
def cached_quantizer(root: str, version: int) -> Quantizer:
    """Per-worker-process cache of loaded artifacts (checksums verified on first load)."""
    from sidlib.device import set_worker_threads

    set_worker_threads()
    return ArtifactStore(root).get(version).load_quantizer().to_preferred_device()


def sid_columns(quantizer: Quantizer, embeddings: np.ndarray) -> dict[str, list[np.ndarray] | np.ndarray]:
    """``codes`` (int32 per row), packed ``sid`` and prefix ``ngrams`` of one batch."""
    codes = quantizer.encode(embeddings)
    cards = quantizer.cardinalities
    return {"codes": list(codes.astype(np.int32)), "sid": pack(codes, cards), "ngrams": list(prefix_ngrams(codes, cards))}


def encode_batches(root: str, version: int, signal: str) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from sidlib.spark.embeddings import to_matrix

        quantizer = cached_quantizer(root, version)
        for batch in batches:
            if not len(batch):
                continue
            columns = sid_columns(quantizer, to_matrix(batch["embedding"]))
            yield pd.DataFrame({"item_id": batch["item_id"].to_numpy(np.int64), "signal": signal,
                                "sid_version": np.int64(version), **columns})

    return run
