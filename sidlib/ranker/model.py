"""The ranker: sparse, dense, embedding and user-history blocks feeding one MLP with a click and a
conv head (two sigmoid outputs, trained with BCE).

* sparse block: hashed user-id embedding and the target item's id embedding;
* embedding block: the target item's content feature (SID n-grams, SIDE codes or raw embedding, per
  :class:`~sidlib.ranker.features.Variant`); with the id it forms the target vector;
* dense block: ``log1p(history length)`` and the history's click rate, linearly embedded;
* user-history block: one Pooled Multi-head Attention layer whose query is the target vector (so the
  pooled history depends on what is being ranked), over the history items (same encoder as the
  target, plus a click embedding). A learned "null" slot is always attendable, so a user without
  history (all slots masked) still gets a finite, learned summary instead of NaN.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from sidlib.ranker.features import ItemEncoder

#: ``ranker_training`` columns the model reads (see :func:`sidlib.ranker.train.load_split`).
INPUT_COLUMNS = ("user_id", "item_id", "target_sid", "hist_len", "hist_item_ids", "hist_sids", "hist_clicks",
                 "hist_mask")
TASKS = ("click", "conv")


class PooledHistory(nn.Module):
    """One PMA layer: multi-head attention from the target query onto history slots, then a residual
    feed-forward (Set Transformer's PMA with the seed vector replaced by the target)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.null = nn.Parameter(torch.zeros(1, 1, dim))
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, target: torch.Tensor, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch = history.shape[0]
        keys = torch.cat([self.null.expand(batch, 1, -1), history], dim=1)
        valid = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        q = self.query(target).unsqueeze(1)
        pooled, _ = self.attention(q, keys, keys, key_padding_mask=~valid, need_weights=False)
        h = self.norm1(q + pooled)
        return self.norm2(h + self.ff(h)).squeeze(1)


class Ranker(nn.Module):
    """Two-task ranker; ``forward(batch)`` returns logits ``[B, 2]`` (click, conv)."""

    def __init__(self, items: ItemEncoder, *, dim: int, heads: int = 2, hidden: int = 64, user_buckets: int = 16_384):
        super().__init__()
        self.items = items
        self.user_buckets = int(user_buckets)
        self.user_table = nn.Embedding(self.user_buckets, dim)
        self.click_table = nn.Embedding(2, dim)
        self.dense = nn.Linear(2, dim)
        self.history = PooledHistory(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(4 * dim, hidden), nn.ReLU(), nn.Linear(hidden, len(TASKS)))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["hist_mask"].bool()
        target = self.items(batch["item_id"], batch["target_sid"])
        history = self.items(batch["hist_item_ids"], batch["hist_sids"]) + self.click_table(batch["hist_clicks"].clamp(0, 1))
        n = mask.sum(1).clamp(min=1).float()
        click_rate = (batch["hist_clicks"].float() * mask).sum(1) / n
        dense = self.dense(torch.stack([torch.log1p(batch["hist_len"].float()), click_rate], dim=1))
        user = self.user_table(batch["user_id"] % self.user_buckets)
        pooled = self.history(target, history, mask)
        return self.mlp(torch.cat([user, target, dense, pooled], dim=1))
