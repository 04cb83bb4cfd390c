"""train_preview: the demo's last step: a few Petastorm-fed batches of ``ranker_training`` through a
small torch model (click prediction from the target's SID codes and history length), proving the
path export -> Delta snapshot -> Petastorm -> torch works on this engine. The real ranker and its
evaluation live in ``sidlib.ranker`` / ``sidlib.jobs.evaluate_ranker``."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sidlib.config import SidlibConfig
from sidlib.reader import dataloader_from_config
from sidlib.results import Result

log = logging.getLogger(__name__)

STEPS = 20
BATCH_SIZE = 512


@dataclass(frozen=True)
class TrainPreviewResult(Result):
    """The ``ranker_training`` version read, the batches and rows fed, the first and last batch loss
    (BCE of click) and the reader's throughput."""

    ranker_training_version: int | None
    batches: int
    rows: int
    first_loss: float
    last_loss: float
    rows_per_s: float


def run(cfg: SidlibConfig, tables: Any) -> TrainPreviewResult:
    torch.manual_seed(0)
    # one reader thread: batches in stored order, so the losses reproduce from run to run
    loader = dataloader_from_config(cfg, split="train", batch_size=BATCH_SIZE, workers_count=1,
                                    columns=("click", "target_codes", "hist_mask"))
    model: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    losses, rows, start = [], 0, time.perf_counter()
    for step, batch in enumerate(loader):
        codes = batch["target_codes"].float()
        features = torch.cat([codes / codes.abs().amax().clamp(min=1.0), batch["hist_mask"].float().mean(1, keepdim=True)], 1)
        if model is None:
            model = nn.Sequential(nn.Linear(features.shape[1], 16), nn.ReLU(), nn.Linear(16, 1))
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        loss = nn.functional.binary_cross_entropy_with_logits(model(features).squeeze(1), batch["click"].float())
        optimizer.zero_grad()  # type: ignore[union-attr]
        loss.backward()
        optimizer.step()  # type: ignore[union-attr]
        losses.append(loss.item())
        rows += len(codes)
        if step + 1 == STEPS:
            break
    log.info("train preview: %d batches, %d rows, BCE %.4f -> %.4f", len(losses), rows, losses[0], losses[-1])
    return TrainPreviewResult(ranker_training_version=loader.dataset.version, batches=len(losses), rows=rows,
                              first_loss=losses[0], last_loss=losses[-1],
                              rows_per_s=round(rows / (time.perf_counter() - start), 1))
