"""Deterministic synthetic data of any size: clustered unit-norm embeddings and power-law user
activity. Generated in fixed-size chunks seeded by (seed, chunk index), so the rows are the same
whether one asks for all of them at once or streams them, and 10^7 rows never sit in memory."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd


def cluster_centres(dim: int, n_clusters: int, seed: int) -> np.ndarray:
    """Two-level hierarchy (super-clusters with sub-clusters) so residual quantizers have structure
    at several scales, like real content embeddings."""
    rng = np.random.default_rng([seed, 0])
    n_super = max(1, int(np.sqrt(n_clusters)))
    supers = rng.standard_normal((n_super, dim)).astype(np.float32)
    centres = supers[rng.integers(0, n_super, n_clusters)] + 0.6 * rng.standard_normal((n_clusters, dim))
    return (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)


def iter_clustered_embeddings(
    n: int, dim: int = 384, *, n_clusters: int = 256, noise: float = 0.35, seed: int = 0, chunk: int = 65536
) -> Iterator[np.ndarray]:
    """Yield float32 unit-norm rows in chunks of ``chunk`` (the last may be shorter); ``noise`` is the
    expected norm of the within-cluster noise relative to the unit cluster centre."""
    centres = cluster_centres(dim, n_clusters, seed)
    for index, start in enumerate(range(0, n, chunk)):
        rng = np.random.default_rng([seed, 1, index])
        size = min(chunk, n - start)
        x = centres[rng.integers(0, n_clusters, size)] + (noise / np.sqrt(dim)) * rng.standard_normal((size, dim))
        yield (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_embeddings(n: int, dim: int = 384, **kwargs) -> np.ndarray:  # type: ignore[no-untyped-def]
    """All ``n`` rows of :func:`iter_clustered_embeddings` as one array."""
    return np.concatenate(list(iter_clustered_embeddings(n, dim, **kwargs)))


def power_law_events(
    n_events: int, *, n_users: int = 10_000, n_items: int = 100_000, user_alpha: float = 1.1,
    item_alpha: float = 1.05, seed: int = 0, start_ts: int = 1_600_000_000,
) -> pd.DataFrame:
    """Events (``user_id``, ``item_id``, ``ts``, ``click``, ``conv``) where user activity and item
    popularity follow Zipf laws, so a few users have very long histories (the heavy-user case)."""
    rng = np.random.default_rng([seed, 2])
    user_p = _zipf_weights(n_users, user_alpha)
    item_p = _zipf_weights(n_items, item_alpha)
    users = rng.choice(n_users, size=n_events, p=user_p).astype(np.int64)
    items = rng.permutation(n_items)[rng.choice(n_items, size=n_events, p=item_p)].astype(np.int64) + 1
    ts = start_ts + np.sort(rng.integers(0, 365 * 86400, n_events)).astype(np.int64)
    click = (rng.random(n_events) < 0.3).astype(np.int32)
    conv = (click.astype(bool) & (rng.random(n_events) < 0.2)).astype(np.int32)
    return pd.DataFrame({"user_id": users + 1, "item_id": items, "ts": ts, "click": click, "conv": conv})


def _zipf_weights(n: int, alpha: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** alpha
    return w / w.sum()
