"""Synthetic data: deterministic by seed, identical whether streamed or built at once, power-law users."""

from __future__ import annotations

import numpy as np

from sidlib.data.synthetic import clustered_embeddings, iter_clustered_embeddings, power_law_events


def test_clustered_embeddings_deterministic_and_chunk_invariant() -> None:
    a = clustered_embeddings(5000, 48, seed=3, chunk=1000)
    b = np.concatenate(list(iter_clustered_embeddings(5000, 48, seed=3, chunk=1000)))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (5000, 48)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(a, clustered_embeddings(5000, 48, seed=4, chunk=1000))


def test_clustered_embeddings_have_cluster_structure() -> None:
    x = clustered_embeddings(4000, 32, n_clusters=16, seed=0)
    sims = x[:200] @ x[:200].T
    # Many pairs share a cluster (high cosine), many do not: a bimodal similarity distribution.
    assert (sims > 0.8).mean() > 0.03 and (sims < 0.5).mean() > 0.3


def test_power_law_events() -> None:
    ev = power_law_events(200_000, n_users=2000, n_items=5000, seed=1)
    assert list(ev.columns) == ["user_id", "item_id", "ts", "click", "conv"]
    counts = ev["user_id"].value_counts()
    assert counts.iloc[0] > 50 * counts.median()  # heavy users exist
    assert ev["ts"].is_monotonic_increasing
    assert (ev["conv"] <= ev["click"]).all()
    assert ev.equals(power_law_events(200_000, n_users=2000, n_items=5000, seed=1))
