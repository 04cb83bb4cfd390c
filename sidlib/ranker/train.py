"""Training and scoring of the :class:`~sidlib.ranker.model.Ranker`.

A split is read once through the Petastorm reader (:func:`sidlib.reader.make_dataloader`, pinned to
one Delta snapshot) into memory, then every variant and seed trains on that copy with its own
shuffling: an evaluation trains many small models on the same rows, and re-reading Parquet for each
would cost more CPU than the training itself. Early stopping watches the ``valid`` loss.

With the compact layout the split holds its impressions and the users' events once
(:class:`~sidlib.histories.HistoryIndex`), and each batch's histories are assembled when it is taken,
as the reader does: memory grows with the events, not with impressions x history length.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sidlib.errors import InvalidInputError, TableError
from sidlib.histories import HistoryIndex
from sidlib.ranker.model import INPUT_COLUMNS, TASKS, Ranker
from sidlib.reader import ASSEMBLED_COLUMNS, HistorySource, make_dataloader

log = logging.getLogger(__name__)

COLUMNS = (*INPUT_COLUMNS, *TASKS, "ts", "sid_version")
Data = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Split:
    """One split in memory: per-impression columns and, with the compact layout, the histories
    their ``hist_end`` points into (the history columns are then assembled by :meth:`take`)."""

    columns: Data
    histories: HistoryIndex | None = None

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.columns[name]

    def take(self, index: torch.Tensor | slice) -> Data:
        """The rows at ``index`` as a batch of the model's input columns."""
        batch = {name: values[index] for name, values in self.columns.items()}
        if self.histories is not None:
            assembled = self.histories.assemble(batch["user_id"].numpy(), batch.pop("hist_end").numpy(), COLUMNS)
            batch.update({name: torch.from_numpy(values) for name, values in assembled.items()})
        return batch


@dataclass(frozen=True)
class RankerSettings:
    epochs: int = 2
    batch_size: int = 1024
    learning_rate: float = 0.003
    eval_every: int = 100
    patience: int = 2
    max_steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"RankerSettings.{name} must be >= 1, got {getattr(self, name)}")
        if self.patience < 0 or (self.max_steps is not None and self.max_steps < 1) or not self.learning_rate > 0:
            raise InvalidInputError("RankerSettings needs patience >= 0, max_steps >= 1 or None, learning_rate > 0")


def n_rows(data: Split) -> int:
    return int(data["item_id"].shape[0])


def load_split(location: str, split: str, *, fmt: str = "delta", version: int | None = None,
               max_rows: int | None = None, keep: str = "latest", batch_size: int = 8192,
               histories: str | None = None, history_length: int | None = None) -> Split:
    """One split of ``ranker_training`` in memory, in time order; with ``max_rows`` only the
    ``latest`` (or ``earliest``) rows are kept, so a sub-sampled train split stays adjacent to test.
    Compact layout: ``location`` is ``ranker_impressions``, ``histories`` the ``user_histories``
    location and ``history_length`` the N of the histories assembled per batch."""
    if keep not in ("latest", "earliest"):
        raise InvalidInputError(f"keep must be 'latest' or 'earliest', got {keep!r}")
    compact = histories is not None
    columns = tuple(c for c in COLUMNS if c not in ASSEMBLED_COLUMNS) + ("hist_end",) if compact else COLUMNS
    loader = make_dataloader(location, split=split, batch_size=batch_size, fmt=fmt, version=version, columns=columns,
                             histories=histories, history_length=history_length)
    parts: dict[str, list[torch.Tensor]] = {c: [] for c in columns}
    for batch in loader:
        for c in columns:
            parts[c].append(batch[c])
    if not parts["item_id"]:
        raise TableError(f"split {split!r} is empty at {location}")
    data = {c: torch.cat(v) for c, v in parts.items()}
    # stable sort on (ts, user_id, item_id): the same rows in the same order on every read
    order = np.lexsort((data["item_id"].numpy(), data["user_id"].numpy(), data["ts"].numpy()))
    if max_rows is not None and max_rows < len(order):
        order = order[-max_rows:] if keep == "latest" else order[:max_rows]
    log.info("%s %s (version %s): kept %d of %d rows", location, split, loader.dataset.version, len(order),
             len(data["item_id"]))
    index = torch.from_numpy(order)
    source: HistorySource | None = loader.dataset.histories
    return Split({name: values[index] for name, values in data.items()},
                 None if source is None else source.index())


def labels(data: Data | Split) -> torch.Tensor:
    """``[n, 2]`` float targets (click, conv)."""
    return torch.stack([data[t] for t in TASKS], dim=1).float()


@torch.no_grad()
def predict(model: Ranker, data: Split, batch_size: int = 8192) -> np.ndarray:
    """Probabilities ``[n, 2]`` (click, conv) in the rows' order."""
    model.eval()
    out = [torch.sigmoid(model(data.take(slice(i, i + batch_size)))) for i in range(0, n_rows(data), batch_size)]
    return torch.cat(out).numpy().astype(np.float64)


def _loss(model: Ranker, data: Split) -> float:
    probs = torch.from_numpy(predict(model, data)).clamp(1e-7, 1 - 1e-7)
    return float(nn.functional.binary_cross_entropy(probs, labels(data).double()))


def fit(model: Ranker, train: Split, valid: Split, settings: RankerSettings, seed: int) -> dict[str, Any]:
    """Adam on the summed click and conv BCE; every ``eval_every`` steps (and at each epoch's end)
    the valid loss is checked, the best weights kept, and training stops after ``patience`` checks
    without improvement. The model is left at its best weights."""
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(int(seed))
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    best, best_state, bad_checks, steps, stopped = float("inf"), copy.deepcopy(model.state_dict()), 0, 0, False
    history: list[tuple[int, float]] = []

    def check() -> bool:
        nonlocal best, best_state, bad_checks
        loss = _loss(model, valid)
        history.append((steps, loss))
        if loss < best - 1e-6:
            best, best_state, bad_checks = loss, copy.deepcopy(model.state_dict()), 0
        else:
            bad_checks += 1
        return bad_checks > settings.patience

    for epoch in range(settings.epochs):
        order = torch.randperm(n_rows(train), generator=generator)
        for step_in_epoch, i in enumerate(range(0, len(order), settings.batch_size)):
            if settings.max_steps is not None and step_in_epoch >= settings.max_steps:
                break
            batch = train.take(order[i:i + settings.batch_size])
            model.train()
            loss = nn.functional.binary_cross_entropy_with_logits(model(batch), labels(batch), reduction="none").mean(0).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
            if steps % settings.eval_every == 0 and check():
                stopped = True
                break
        if stopped:
            break
        if steps % settings.eval_every and check():
            stopped = True
            break
    model.load_state_dict(best_state)
    return {"steps": steps, "epochs_started": epoch + 1, "best_valid_loss": best, "stopped_early": stopped,
            "valid_curve": history, "seconds": round(time.perf_counter() - start, 2)}
