"""Stream ``ranker_training`` (or ``ranker_impressions`` with ``user_histories``) into a torch
``DataLoader`` through Petastorm, with no Spark session.

Petastorm's ``make_spark_converter`` needs classic Spark (``_jdf``), so this works on every engine by
reading the table's files directly with ``make_batch_reader``:

* **Delta**: the files of one snapshot, ``deltalake.DeltaTable(path, version).file_uris(...)``, pinned
  to a version (default: the current one, recorded as :attr:`RankerDataset.version`) so a concurrent
  export cannot change what an epoch reads; the ``split`` partition selects the files of one split;
* **Parquet** (classic-Spark tests, ``tables.format=parquet``): the ``*.parquet`` files under the
  table directory (``split=<name>/`` for one split).

Two layouts (``sequences.layout``, :mod:`sidlib.spark.histories`) give the same rows (in another
order: the compact one is read bucket by bucket):

* **materialized**: ``ranker_training`` rows carry their histories;
* **compact**: ``ranker_impressions`` rows point into ``user_histories`` (``histories=`` its location),
  and the reader assembles each batch's histories of ``history_length`` events, chosen here, not when
  the tables were built (:mod:`sidlib.histories`). Both tables are partitioned by ``user_bucket``: the
  reader takes one bucket at a time, so it holds one bucket's histories, never the whole table.

Each batch is a ``dict`` of tensors of exactly ``batch_size`` rows (the last one may be shorter unless
``drop_last``): integer columns become ``int64`` (embedding-ready ids; labels ``click``/``conv`` too,
call ``.float()`` for a BCE loss), ``hist_mask`` becomes ``bool``; fixed-length arrays are
``[B, width]``. String columns (``signal``) are not read unless asked for (then lists of ``str``).
SIDE codes of history slots come from ``hist_sids`` (:func:`sidlib.sid.side_codes_torch`). Padding
conventions: :mod:`sidlib.spark.sequences`.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from sidlib import schemas
from sidlib.config import MAX_HISTORY_LENGTH
from sidlib.errors import ConfigError, TableError
from sidlib.histories import HISTORY_COLUMNS, HistoryIndex

log = logging.getLogger(__name__)

#: Columns read by default: every numeric column of ``ranker_training`` (not ``signal``/``split``).
DEFAULT_COLUMNS = tuple(c for c, t in schemas.RANKER_TRAINING.items() if t != "string")
#: What the compact layout assembles per batch; every other column is stored in ``ranker_impressions``.
ASSEMBLED_COLUMNS = ("hist_len", *HISTORY_COLUMNS, "hist_mask")
#: What the compact reader can return: the stored columns (not the ``user_bucket`` and ``split``
#: partitions) and the assembled ones; by default the same columns as the materialized layout's.
COMPACT_COLUMNS = (*(c for c in schemas.RANKER_IMPRESSIONS if c not in ("user_bucket", "split")), *ASSEMBLED_COLUMNS)
BOOL_COLUMNS = ("hist_mask",)
BUCKET_DIRECTORY = re.compile(r"/user_bucket=(-?[0-9]+)/")
Block = dict[str, np.ndarray]

# Petastorm 0.12 drives pyarrow 14's legacy ParquetDataset and warns on every file it opens.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")


def _as_uri(path: str | Path) -> str:
    """delta-rs returns local files as plain paths; Petastorm wants URLs with a scheme, and takes the
    path part literally (``Path.as_uri`` would percent-encode the ``=`` of ``split=train``)."""
    path = str(path)
    return path if "://" in path else "file://" + str(Path(path).resolve())


def snapshot_files(location: str, *, fmt: str = "delta", version: int | None = None,
                   split: str | None = None) -> tuple[list[str], int | None]:
    """``(file URIs, version)`` of the table at ``location`` (``version`` is ``None`` for Parquet)."""
    if split is not None and split not in schemas.SPLITS:
        raise ConfigError(f"split must be one of {', '.join(schemas.SPLITS)} or None, got {split!r}")
    if fmt == "delta":
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            dt = DeltaTable(location, version=version)
        except TableNotFoundError:
            raise TableError(f"no Delta table at {location} (run the job that writes it first)") from None
        predicate = [("split", "=", split)] if split is not None else None
        uris = dt.file_uris(file_pruning_predicate=predicate) if predicate else dt.file_uris()
        return sorted(_as_uri(u) for u in uris), int(dt.version())
    if fmt == "parquet":
        root = Path(location)
        if not root.is_dir():
            raise TableError(f"no Parquet table at {location} (run the job that writes it first)")
        base = root / f"split={split}" if split is not None else root
        files = [p for p in sorted(base.rglob("*.parquet"))
                 if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)]
        return [_as_uri(p) for p in files], None
    raise ConfigError(f"format must be delta or parquet, got {fmt!r}")


def files_by_bucket(files: Sequence[str]) -> dict[int, list[str]]:
    """The files of a table partitioned by ``user_bucket``, per bucket (from their directories)."""
    out: dict[int, list[str]] = {}
    for uri in files:
        match = BUCKET_DIRECTORY.search(uri)
        if match is None:
            raise TableError(f"{uri} is not under a user_bucket=<n>/ directory: not a compact-layout table")
        out.setdefault(int(match.group(1)), []).append(uri)
    return out


def _local_path(uri: str) -> str:
    return uri.removeprefix("file://")


@dataclass(frozen=True)
class HistorySource:
    """The files of one ``user_histories`` snapshot per user bucket, served as histories of
    ``history_length`` events."""

    location: str
    version: int | None
    history_length: int
    buckets: dict[int, list[str]]

    @classmethod
    def open(cls, location: str, *, fmt: str, version: int | None, history_length: int) -> "HistorySource":
        if not 1 <= int(history_length) <= MAX_HISTORY_LENGTH:
            raise ConfigError(f"history_length must be in 1..{MAX_HISTORY_LENGTH}, got {history_length}")
        files, pinned = snapshot_files(location, fmt=fmt, version=version)
        return cls(location, pinned, int(history_length), files_by_bucket(files))

    def index(self, buckets: Sequence[int] | None = None) -> HistoryIndex:
        """The histories of the users of ``buckets`` (default: every bucket)."""
        import pyarrow.parquet as pq

        wanted = sorted(self.buckets) if buckets is None else buckets
        missing = [b for b in wanted if b not in self.buckets]
        if missing:
            raise TableError(f"user_histories at {self.location} (version {self.version}) has no files of user bucket(s) "
                             f"{missing}, which the impressions read have: rebuild (build_sequences, then "
                             f"export_training_data)")
        paths = [_local_path(f) for b in wanted for f in self.buckets[b]]
        columns = ["user_id", "chunk", *HistoryIndex.SOURCES]
        table = pq.ParquetDataset(paths).read(columns=columns) if paths else None
        return HistoryIndex.from_table(table, self.history_length)


def _to_tensor(name: str, values: Any) -> Any:
    """int -> int64, bool and ``hist_mask`` -> bool, float -> float32, strings -> list of str."""
    arr = np.asarray(values)
    if arr.dtype.kind in "USO":
        return [str(v) for v in arr]
    if name in BOOL_COLUMNS or arr.dtype.kind == "b":
        dtype: Any = np.bool_
    elif arr.dtype.kind in "iu":
        dtype = np.int64
    else:
        dtype = np.float32
    # Petastorm's arrays may be read-only views: copy those (torch wants writable memory)
    return torch.from_numpy(np.require(arr, dtype=dtype, requirements=["C", "W"]))


def _rows(block: Block) -> int:
    return len(next(iter(block.values())))


@dataclass
class RankerDataset(IterableDataset):
    """An iterable of ready-made batches over one snapshot (each iteration opens fresh readers, so
    a ``DataLoader`` over it can run several epochs). With ``histories`` (the compact layout) the
    files are read one user bucket at a time and each batch's histories assembled from that bucket's."""

    files: list[str]
    version: int | None
    batch_size: int = 1024
    columns: Sequence[str] = DEFAULT_COLUMNS
    drop_last: bool = False
    shuffle_row_groups: bool = False
    seed: int | None = None
    workers_count: int = 2
    shuffle_rows: int = 0
    histories: HistorySource | None = None
    rows_read: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        super().__init__()
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        schema = schemas.RANKER_TRAINING if self.histories is None else COMPACT_COLUMNS
        unknown = [c for c in self.columns if c not in schema]
        if unknown:
            raise ConfigError(f"unknown {'ranker_training' if self.histories is None else 'compact reader'} "
                              f"columns {unknown}")
        if "split" in self.columns:
            raise ConfigError("split is the partition column (not stored in the files): choose it with split=")
        if self.shuffle_rows < 0:
            raise ConfigError(f"shuffle_rows must be >= 0, got {self.shuffle_rows}")

    @property
    def stored_columns(self) -> list[str]:
        """The columns read from the files: the asked-for ones, with the compact layout's history
        columns replaced by what assembles them."""
        if self.histories is None:
            return list(self.columns)
        stored = [c for c in self.columns if c not in ASSEMBLED_COLUMNS]
        if len(stored) < len(self.columns):
            stored += [c for c in ("user_id", "hist_end") if c not in stored]
        return stored

    def _reader(self, files: Sequence[str]):  # type: ignore[no-untyped-def]
        from petastorm import make_batch_reader

        return make_batch_reader(list(files), schema_fields=self.stored_columns, num_epochs=1,
                                 shuffle_row_groups=self.shuffle_row_groups, seed=self.seed,
                                 workers_count=self.workers_count, reader_pool_type="thread")

    def _groups(self, rng: np.random.Generator) -> list[tuple[int | None, list[str]]]:
        """``(user bucket, its files)`` in reading order; one group of every file when materialized."""
        if self.histories is None:
            return [(None, list(self.files))]
        groups = sorted(files_by_bucket(self.files).items())
        if self.shuffle_row_groups:
            groups = [groups[i] for i in rng.permutation(len(groups))]
        return groups

    @property
    def assembles(self) -> bool:
        """Whether batches need histories assembled (compact layout, a history column asked for)."""
        return self.histories is not None and any(c in ASSEMBLED_COLUMNS for c in self.columns)

    def _finish(self, block: Block, index: HistoryIndex | None) -> Block:
        """The asked-for columns of ``block``, histories assembled when compact."""
        if index is not None:
            block = {**block, **index.assemble(block["user_id"], block["hist_end"], self.columns)}
        return {c: block[c] for c in self.columns}

    def _cuts(self, emitted: int, n: int, final: bool) -> list[tuple[int, int]]:
        """Block bounds in a buffer of ``n`` rows, after ``emitted`` rows went out: each block ends
        where a batch of the whole stream ends (so a group's short end is completed by one block of
        the next group, not carried into every later batch); with ``final`` the rest too."""
        bounds, start = [], 0
        size = (-emitted) % self.batch_size or self.batch_size
        while start + size <= n:
            bounds.append((start, start + size))
            start, size = start + size, self.batch_size
        if final and start < n:
            bounds.append((start, n))
        return bounds

    def _blocks(self, rng: np.random.Generator) -> Iterator[Block]:
        """Blocks of at most ``batch_size`` rows, group by group (one bucket's histories loaded at a
        time, only when assembling); rows permuted in buffers of ``shuffle_rows`` when shuffling."""
        threshold = max(self.batch_size, self.shuffle_rows)
        columns = self.stored_columns
        emitted = 0
        for bucket, files in self._groups(rng):
            index = self.histories.index([bucket]) if self.assembles else None  # type: ignore[union-attr,list-item]
            pending: dict[str, list[np.ndarray]] = {c: [] for c in columns}
            n_pending = 0
            with self._reader(files) as reader:
                for batch in reader:
                    n = len(getattr(batch, columns[0]))
                    if not n:
                        continue
                    for c in columns:
                        pending[c].append(np.asarray(getattr(batch, c)))
                    n_pending += n
                    if n_pending < threshold:
                        continue
                    merged = self._merge(pending, n_pending, rng)
                    cuts = self._cuts(emitted, n_pending, final=False)
                    for start, stop in cuts:
                        yield self._finish({c: v[start:stop] for c, v in merged.items()}, index)
                    done = cuts[-1][1] if cuts else 0
                    emitted += done
                    pending = {c: [v[done:]] for c, v in merged.items()}
                    n_pending -= done
            if n_pending:
                merged = self._merge(pending, n_pending, rng)
                for start, stop in self._cuts(emitted, n_pending, final=True):
                    yield self._finish({c: v[start:stop] for c, v in merged.items()}, index)
                emitted += n_pending

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.rows_read = 0
        if not self.files:
            return
        carry: Block | None = None  # the short end of a group, completed by the next group's first block
        for block in self._blocks(np.random.default_rng(self.seed)):
            if carry is not None:
                block = {c: np.concatenate([carry[c], block[c]]) for c in block}
                carry = None
            n = _rows(block)
            full = (n // self.batch_size) * self.batch_size
            for start in range(0, full, self.batch_size):
                yield self._batch(block, start, start + self.batch_size)
            if full < n:
                carry = {c: v[full:] for c, v in block.items()}
        if carry is not None and not (self.drop_last and _rows(carry) < self.batch_size):
            yield self._batch(carry, 0, _rows(carry))

    def _batch(self, block: Block, start: int, stop: int) -> dict[str, Any]:
        self.rows_read += stop - start
        return {name: _to_tensor(name, values[start:stop]) for name, values in block.items()}

    def _merge(self, pending: dict[str, list[np.ndarray]], n: int, rng: np.random.Generator) -> Block:
        """One array per column; rows permuted when shuffling (``shuffle_rows`` > 0)."""
        merged = {c: np.concatenate(v) if len(v) > 1 else v[0] for c, v in pending.items()}
        if self.shuffle_rows:
            order = rng.permutation(n)
            merged = {c: v[order] for c, v in merged.items()}
        return merged


def make_dataloader(location: str, *, split: str | None = "train", batch_size: int = 1024, fmt: str = "delta",
                    version: int | None = None, columns: Sequence[str] | None = None, drop_last: bool = False,
                    shuffle_row_groups: bool = False, shuffle_rows: int = 0, seed: int | None = None,
                    workers_count: int = 2, histories: str | None = None, history_length: int | None = None,
                    histories_version: int | None = None) -> DataLoader:
    """A torch ``DataLoader`` over ``ranker_training`` at ``location`` (a path), one ``split``
    (``None``: all rows), pinned at ``version`` (Delta; default the current one). The loader's
    ``dataset`` is the :class:`RankerDataset`: its ``version`` and ``files`` say what is read.

    Compact layout: ``location`` is ``ranker_impressions``, ``histories`` the ``user_histories``
    table, ``history_length`` the N of the histories assembled (up to :data:`MAX_HISTORY_LENGTH`), and
    ``histories_version`` the snapshot read (default: the one the impressions were built against).

    Order: as stored (rows of one user are near each other) unless shuffled: ``shuffle_row_groups``
    (Petastorm's, across row groups; and across user buckets when compact) and ``shuffle_rows``
    (permute rows in a buffer of that many rows before cutting batches; e.g. 100_000 for training).
    ``seed`` makes both reproducible (with ``workers_count=1``: several reader threads finish row
    groups in any order)."""
    if (histories is None) != (history_length is None):
        raise ConfigError("the compact layout needs both histories= (the user_histories location) and "
                          "history_length=; the materialized layout neither")
    files, pinned = snapshot_files(location, fmt=fmt, version=version, split=split)
    source = None
    if histories is not None:
        files_by_bucket(files)  # refuses a table of the other layout before reading its columns
        if histories_version is None and fmt == "delta":
            histories_version = built_against(files)
        source = HistorySource.open(histories, fmt=fmt, version=histories_version, history_length=int(history_length))
    dataset = RankerDataset(files, pinned, batch_size=batch_size, drop_last=drop_last,
                            columns=tuple(columns or DEFAULT_COLUMNS),
                            shuffle_row_groups=shuffle_row_groups, seed=seed, workers_count=workers_count,
                            shuffle_rows=shuffle_rows, histories=source)
    log.info("reader: %s split=%s version=%s, %d files%s", location, split, pinned, len(files),
             "" if source is None else f"; histories {histories} version {source.version}, N={source.history_length}")
    # batches are assembled by the dataset (Petastorm reads in its own threads): no re-batching here
    return DataLoader(dataset, batch_size=None, num_workers=0)


def built_against(files: Sequence[str]) -> int | None:
    """The one ``user_histories`` version that ``ranker_impressions`` files point into."""
    import pyarrow.parquet as pq

    if not files:
        return None
    values = pq.ParquetDataset([_local_path(f) for f in files]).read(columns=["histories_version"])
    found = {v for v in values.column("histories_version").unique().to_pylist()}
    if len(found) > 1:
        raise TableError(f"ranker_impressions points into several user_histories versions {sorted(found, key=str)}: "
                         f"rebuild it (build_sequences, then export_training_data)")
    return next(iter(found))


def dataloader_from_config(cfg: Any, **kwargs: Any) -> DataLoader:
    """:func:`make_dataloader` for the path tables of a :class:`SidlibConfig`: ``ranker_training``,
    or with ``sequences.layout: compact`` ``ranker_impressions`` and ``user_histories`` at
    ``sequences.history_length`` (unless given). Catalog tables have no path here: pass their storage
    locations to :func:`make_dataloader`."""
    if cfg.tables.database:
        raise ConfigError("the ranker tables are catalog tables (tables.database is set): pass their storage "
                          "locations to sidlib.reader.make_dataloader")
    root = Path(cfg.tables.root)
    if cfg.sequences.layout == "compact":
        kwargs.setdefault("history_length", cfg.sequences.history_length)
        kwargs["histories"] = str((root / cfg.tables.user_histories).resolve())
        location = root / cfg.tables.ranker_impressions
    else:
        location = root / cfg.tables.ranker_training
    return make_dataloader(str(location.resolve()), fmt=cfg.tables.format, **kwargs)
