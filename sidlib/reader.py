"""Stream ``ranker_training`` into a torch ``DataLoader`` through Petastorm, with no Spark session.

Petastorm's ``make_spark_converter`` needs classic Spark (``_jdf``), so this works on every engine by
reading the table's files directly with ``make_batch_reader``:

* **Delta**: the files of one snapshot, ``deltalake.DeltaTable(path, version).file_uris(...)``, pinned
  to a version (default: the current one, recorded as :attr:`RankerDataset.version`) so a concurrent
  export cannot change what an epoch reads; the ``split`` partition selects the files of one split;
* **Parquet** (classic-Spark tests, ``tables.format=parquet``): the ``*.parquet`` files under the
  table directory (``split=<name>/`` for one split).

Each batch is a ``dict`` of tensors of exactly ``batch_size`` rows (the last one may be shorter unless
``drop_last``): integer columns become ``int64`` (embedding-ready ids; labels ``click``/``conv`` too,
call ``.float()`` for a BCE loss), ``hist_mask`` becomes ``bool``; fixed-length arrays are
``[B, width]``, and ``hist_codes`` is reshaped to ``[B, N, n_codes]`` when ``target_codes`` is read
too (it gives ``n_codes``). String columns (``signal``) are not read unless asked for (then lists of
``str``). Padding conventions: :mod:`sidlib.spark.sequences`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from sidlib import schemas
from sidlib.errors import ConfigError, TableError

log = logging.getLogger(__name__)

#: Columns read by default: every numeric column of ``ranker_training`` (not ``signal``/``split``).
DEFAULT_COLUMNS = tuple(c for c, t in schemas.RANKER_TRAINING.items() if t != "string")
BOOL_COLUMNS = ("hist_mask",)

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
            raise TableError(f"no Delta table at {location} (run export_training_data first)") from None
        predicate = [("split", "=", split)] if split is not None else None
        uris = dt.file_uris(file_pruning_predicate=predicate) if predicate else dt.file_uris()
        return sorted(_as_uri(u) for u in uris), int(dt.version())
    if fmt == "parquet":
        root = Path(location)
        if not root.is_dir():
            raise TableError(f"no Parquet table at {location} (run export_training_data first)")
        base = root / f"split={split}" if split is not None else root
        files = [p for p in sorted(base.rglob("*.parquet"))
                 if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)]
        return [_as_uri(p) for p in files], None
    raise ConfigError(f"format must be delta or parquet, got {fmt!r}")


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


@dataclass
class RankerDataset(IterableDataset):
    """An iterable of ready-made batches over one snapshot (each iteration opens a fresh reader, so
    a ``DataLoader`` over it can run several epochs)."""

    files: list[str]
    version: int | None
    batch_size: int = 1024
    columns: Sequence[str] = DEFAULT_COLUMNS
    drop_last: bool = False
    shuffle_row_groups: bool = False
    seed: int | None = None
    workers_count: int = 2
    reshape_codes: bool = True
    shuffle_rows: int = 0
    rows_read: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        super().__init__()
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        unknown = [c for c in self.columns if c not in schemas.RANKER_TRAINING]
        if unknown:
            raise ConfigError(f"unknown ranker_training columns {unknown}")
        if "split" in self.columns:
            raise ConfigError("split is the partition column (not stored in the files): choose it with split=")
        if self.shuffle_rows < 0:
            raise ConfigError(f"shuffle_rows must be >= 0, got {self.shuffle_rows}")

    def _reader(self):  # type: ignore[no-untyped-def]
        from petastorm import make_batch_reader

        return make_batch_reader(list(self.files), schema_fields=list(self.columns), num_epochs=1,
                                 shuffle_row_groups=self.shuffle_row_groups, seed=self.seed,
                                 workers_count=self.workers_count, reader_pool_type="thread")

    def _batch(self, merged: dict[str, np.ndarray], start: int, stop: int) -> dict[str, Any]:
        out = {name: _to_tensor(name, values[start:stop]) for name, values in merged.items()}
        if self.reshape_codes and "hist_codes" in out and "target_codes" in out:
            n_codes = out["target_codes"].shape[1]
            out["hist_codes"] = out["hist_codes"].reshape(out["hist_codes"].shape[0], -1, n_codes)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.rows_read = 0
        if not self.files:
            return
        rng = np.random.default_rng(self.seed)
        threshold = max(self.batch_size, self.shuffle_rows)
        pending: dict[str, list[np.ndarray]] = {c: [] for c in self.columns}
        n_pending = 0
        with self._reader() as reader:
            for batch in reader:
                n = len(getattr(batch, self.columns[0]))
                if not n:
                    continue
                for c in self.columns:
                    pending[c].append(np.asarray(getattr(batch, c)))
                n_pending += n
                if n_pending < threshold:
                    continue
                merged = self._merge(pending, n_pending, rng)
                full = (n_pending // self.batch_size) * self.batch_size
                for start in range(0, full, self.batch_size):
                    self.rows_read += self.batch_size
                    yield self._batch(merged, start, start + self.batch_size)
                pending = {c: [v[full:]] for c, v in merged.items()}
                n_pending -= full
        if n_pending:
            merged = self._merge(pending, n_pending, rng)
            for start in range(0, n_pending, self.batch_size):
                stop = min(start + self.batch_size, n_pending)
                if stop - start < self.batch_size and self.drop_last:
                    break
                self.rows_read += stop - start
                yield self._batch(merged, start, stop)

    def _merge(self, pending: dict[str, list[np.ndarray]], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One array per column; rows permuted when shuffling (``shuffle_rows`` > 0)."""
        merged = {c: np.concatenate(v) if len(v) > 1 else v[0] for c, v in pending.items()}
        if self.shuffle_rows:
            order = rng.permutation(n)
            merged = {c: v[order] for c, v in merged.items()}
        return merged


def make_dataloader(location: str, *, split: str | None = "train", batch_size: int = 1024, fmt: str = "delta",
                    version: int | None = None, columns: Sequence[str] | None = None, drop_last: bool = False,
                    shuffle_row_groups: bool = False, shuffle_rows: int = 0, seed: int | None = None,
                    workers_count: int = 2, reshape_codes: bool = True) -> DataLoader:
    """A torch ``DataLoader`` over ``ranker_training`` at ``location`` (a path), one ``split``
    (``None``: all rows), pinned at ``version`` (Delta; default the current one). The loader's
    ``dataset`` is the :class:`RankerDataset`: its ``version`` and ``files`` say what is read.

    Order: as stored (rows of one user are near each other) unless shuffled: ``shuffle_row_groups``
    (Petastorm's, across row groups) and ``shuffle_rows`` (permute rows in a buffer of that many
    rows before cutting batches; e.g. 100_000 for training). ``seed`` makes both reproducible
    (with ``workers_count=1``: several reader threads finish row groups in any order)."""
    files, pinned = snapshot_files(location, fmt=fmt, version=version, split=split)
    dataset = RankerDataset(files, pinned, batch_size=batch_size, columns=tuple(columns or DEFAULT_COLUMNS),
                            drop_last=drop_last, shuffle_row_groups=shuffle_row_groups, seed=seed,
                            workers_count=workers_count, reshape_codes=reshape_codes, shuffle_rows=shuffle_rows)
    log.info("ranker_training reader: %s split=%s version=%s, %d files", location, split, pinned, len(files))
    # batches are assembled by the dataset (Petastorm reads in its own threads): no re-batching here
    return DataLoader(dataset, batch_size=None, num_workers=0)


def dataloader_from_config(cfg: Any, **kwargs: Any) -> DataLoader:
    """:func:`make_dataloader` for the path table ``ranker_training`` of a :class:`SidlibConfig`
    (catalog tables have no path here: pass their storage location to :func:`make_dataloader`)."""
    if cfg.tables.database:
        raise ConfigError("ranker_training is a catalog table (tables.database is set): pass its storage "
                          "location to sidlib.reader.make_dataloader")
    location = str((Path(cfg.tables.root) / cfg.tables.ranker_training).resolve())
    return make_dataloader(location, fmt=cfg.tables.format, **kwargs)
