"""Build the upstream tables from real data that installs offline.

* ``items``: MovieLens-1M movies (id, title, year, genres).
* ``events``: the 1M ratings as impressions with ``click = rating >= 4`` and ``conv = rating == 5``.
* ``content_embeddings``: per item, the signals the quantizers consume:
  ``text`` (MiniLM of "title (year). Genres: ..."), ``credits`` (MiniLM of director/writer/cast/country
  from Wikidata, for the ~2,900 items that join) and ``genres`` (18-d multi-hot, a categorical signal).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from sidlib import schemas
from sidlib.config import SidlibConfig
from sidlib.data import movielens, wikidata_movies
from sidlib.data.embed import embed_texts
from sidlib.results import Result
from sidlib.spark.local_values import write_frame

log = logging.getLogger(__name__)

GENRES_MODEL_VERSION = "genres-multihot-v1"


def text_view(items: pd.DataFrame) -> list[str]:
    return [f"{t} ({y}). Genres: {', '.join(g)}." for t, y, g in zip(items["title"], items["year"], items["genres"])]


def credits_view(joined: pd.DataFrame) -> list[str]:
    def one(row: pd.Series) -> str:
        cast = ", ".join(row["cast"].split(", ")[:8]) if row["cast"] else "unknown"
        return (f"Directed by {row['director'] or 'unknown'}. Written by {row['writer'] or 'unknown'}. "
                f"Starring {cast}. Country: {row['country'] or 'unknown'}. Language: {row['language'] or 'unknown'}.")
    return [one(row) for _, row in joined.iterrows()]


def _logged_at(value: str | None) -> pd.Timestamp:
    """UTC wall-clock timestamp without zone (Spark ``timestamp`` semantics); ``None`` = now. The
    config checked ``value`` is ISO 8601."""
    ts = pd.Timestamp(value) if value else pd.Timestamp(datetime.now(timezone.utc))
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def build_frames(cfg: SidlibConfig) -> dict[str, pd.DataFrame]:
    """The three tables as pandas frames (no Spark), so tests and benchmarks can reuse them."""
    items = movielens.load_items()
    if cfg.ingest.max_items is not None:
        items = items.head(cfg.ingest.max_items)
    events = movielens.load_events(items)
    joined = wikidata_movies.join_to_items(items, wikidata_movies.load_movies())
    cache, bs = cfg.ingest.cache_dir, cfg.ingest.embed_batch_size
    logged_at = _logged_at(cfg.ingest.logged_at)
    signals = [
        ("text", items["item_id"], embed_texts(text_view(items), cache, batch_size=bs), cfg.ingest.text_model_version),
        ("credits", joined["item_id"], embed_texts(credits_view(joined), cache, batch_size=bs), cfg.ingest.text_model_version),
        ("genres", items["item_id"], movielens.genre_multi_hot(items["genres"]), GENRES_MODEL_VERSION),
    ]
    content = pd.concat([
        pd.DataFrame({"item_id": ids.to_numpy(np.int64), "signal": name, "model_version": version,
                      "embedding": list(vectors), "logged_at": logged_at})
        for name, ids, vectors, version in signals
    ], ignore_index=True)
    return {
        "items": items[list(schemas.ITEMS)].reset_index(drop=True),
        "events": events,
        "content_embeddings": content,
    }


@dataclass(frozen=True)
class IngestResult(Result):
    """Per upstream table written: location, version, rows and write time."""

    written: dict[str, dict[str, Any]]


def run(cfg: SidlibConfig, tables: Any) -> IngestResult:
    start = time.perf_counter()
    frames = build_frames(cfg)
    log.info("built demo frames in %.1fs", time.perf_counter() - start)
    written = {}
    for table in schemas.UPSTREAM:
        t0 = time.perf_counter()
        version = write_frame(tables, frames[table], table)
        written[table] = {"location": tables.location(table), "version": version, "rows": len(frames[table]),
                          "seconds": round(time.perf_counter() - t0, 2)}
        log.info("wrote %s: %d rows, version %s", table, len(frames[table]), version)
    return IngestResult(written=written)
