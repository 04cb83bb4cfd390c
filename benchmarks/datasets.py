"""Real embedding sets for benchmarks, built from data that installs offline and cached on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sidlib.data import movielens, wikidata_movies
from sidlib.data.embed import embed_texts
from sidlib.jobs.ingest_demo_data import text_view

CACHE = Path(__file__).resolve().parents[1] / "data" / "cache"


def minilm_movies(seed: int = 0, holdout: float = 0.2) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """MiniLM embeddings of the 3,883 MovieLens item texts and the 17,472 Wikidata film texts,
    shuffled and split into (train, held-out) item sets; also the titles in the same order."""
    items = movielens.load_items()
    movies = wikidata_movies.load_movies()
    texts = text_view(items) + wikidata_movies.movie_texts(movies)
    titles = [f"{t} ({y})" for t, y in zip(items["title"], items["year"])] + \
             [f"{t} ({y})" for t, y in zip(movies["title"], movies["year"])]
    x = embed_texts(texts, CACHE)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(holdout * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], x[test], [titles[i] for i in np.concatenate([train, test])]
