"""Wikidata film facts (director, writer, cast, country) from ``bokeh-sampledata``'s ``movies.db``
(CC0), joined to MovieLens items on a normalised title + year key."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import unicodedata
from pathlib import Path

import pandas as pd

from sidlib.errors import SidlibError

_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.*), (?P<article>the|a|an|les|la|le|il|el|das|der|die|l')$")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def movies_db() -> Path:
    spec = importlib.util.find_spec("bokeh_sampledata")
    if spec is None or not spec.submodule_search_locations:
        raise SidlibError("Wikidata movies not found: install `pip install --no-deps bokeh-sampledata==2026.1`")
    path = Path(list(spec.submodule_search_locations)[0]) / "_data" / "movies.db"
    if not path.is_file():
        raise SidlibError(f"movies.db missing at {path}")
    return path


def normalise_title(title: str) -> str:
    """"American President, The" and "The American President" -> "the american president";
    drops a parenthesised alternative title ("Shanghai Triad (Yao a yao...)")."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower().strip()
    text = text.split(" (")[0].strip()
    match = _TRAILING_ARTICLE.match(text)
    if match:
        text = f"{match['article']} {match['rest']}"
    return _NON_ALNUM.sub(" ", text).strip()


def load_movies() -> pd.DataFrame:
    """``title``, ``year``, ``genre``, ``director``, ``writer``, ``cast``, ``country``, ``language``."""
    with sqlite3.connect(f"file:{movies_db()}?mode=ro", uri=True) as conn:
        df = pd.read_sql_query(
            'SELECT Title AS title, Year AS year, Genre AS genre, Director AS director, Writer AS writer, "Cast" AS cast, '
            "Country AS country, Language AS language FROM omdb",
            conn,
        )
    return df.fillna("")


def join_to_items(items: pd.DataFrame, movies: pd.DataFrame) -> pd.DataFrame:
    """Items with their Wikidata facts; one row per matched item (first match on title + year)."""
    movies = movies.assign(match_key=movies["title"].map(normalise_title) + "|" + movies["year"].astype(str))
    movies = movies.drop_duplicates("match_key")
    keyed = items.assign(match_key=items["title"].map(normalise_title) + "|" + items["year"].astype(str))
    return keyed.merge(movies.drop(columns=["title", "year", "genre"]), on="match_key", how="inner").drop(columns="match_key")


def movie_texts(movies: pd.DataFrame) -> list[str]:
    """One descriptive text per Wikidata film (title, year, genre, people, country), for embedding."""
    def one(row: pd.Series) -> str:
        cast = ", ".join(row["cast"].split(", ")[:6]) if row["cast"] else "unknown"
        return (f"{row['title']} ({row['year']}). Genre: {row.get('genre') or 'unknown'}. Directed by "
                f"{row['director'] or 'unknown'}. Starring {cast}. Country: {row['country'] or 'unknown'}.")
    return [one(row) for _, row in movies.iterrows()]
