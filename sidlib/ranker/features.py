"""Item representations: what the ranker knows about an item (the target and every history slot).

Every variant starts from a hashed item-id embedding (the baseline) and adds one content feature:

* ``sid:<n>``: embeddings of the SID's prefix n-grams ``j = 0..n-1`` (the first ``j+1`` codes packed),
  one table per prefix with ``min(L^(j+1), max_table_rows)`` rows (ids beyond the cap are hashed
  modulo). Items sharing coarse codes share rows, which is how a cold item borrows from warm ones;
  the price is tables that grow with the hash size.
* ``side``: the SID's codes, unpacked from the packed id by floor-div/mod and centred
  (:func:`sidlib.sid.side_codes_torch`), projected by a learned ``P x d`` matrix Ω. No table: the
  parameter count does not depend on the hash size.
* ``raw``: the raw content embedding, held in memory as a non-trainable buffer and projected to ``d``;
  the expensive upper bound (4 bytes per dimension per item occurrence).

Prefix n-gram ids are computed from the packed SID itself (``sid mod prod_{k<=j} L_k``: position 0 is
the least significant digit), so history slots, which carry only packed SIDs, and the target use one
rule. A missing SID (-1, also every padded history slot) maps to a reserved all-zero row (``sid``) or a
zero vector (``side``, ``raw``), leaving the item-id embedding alone.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from sidlib.errors import ConfigError
from sidlib.sid import prefix_hash_sizes, side_codes_torch
from sidlib.variants import Variant


class RawEmbeddings(nn.Module):
    """item id -> raw content embedding, as buffers (not trained, not in ``parameters()``)."""

    def __init__(self, item_ids: np.ndarray, matrix: np.ndarray):
        super().__init__()
        item_ids = np.asarray(item_ids, dtype=np.int64)
        if item_ids.ndim != 1 or len(item_ids) != len(matrix) or len(item_ids) == 0 or item_ids.min() < 0:
            raise ConfigError("raw embeddings need one non-negative item id per matrix row")
        index = np.zeros(int(item_ids.max()) + 2, dtype=np.int64)  # 0 = no embedding (zero row)
        index[item_ids] = np.arange(1, len(item_ids) + 1)
        table = np.zeros((len(item_ids) + 1, matrix.shape[1]), dtype=np.float32)
        table[1:] = matrix
        self.register_buffer("index", torch.from_numpy(index), persistent=False)
        self.register_buffer("table", torch.from_numpy(table), persistent=False)

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        rows = self.index[item_ids.clamp(0, self.index.shape[0] - 1)]
        return self.table[rows]


class ItemEncoder(nn.Module):
    """``(item_ids, sids)`` of any shape -> item vectors ``[..., dim]`` for one :class:`Variant`."""

    def __init__(self, variant: Variant, dim: int, *, item_buckets: int, cardinalities: Sequence[int] | None = None,
                 max_table_rows: int = 65_536, raw: RawEmbeddings | None = None):
        super().__init__()
        self.variant = variant
        self.item_buckets = int(item_buckets)
        self.item_table = nn.Embedding(self.item_buckets, dim)
        self.cardinalities = [int(c) for c in cardinalities or []]
        if variant.kind in ("sid", "side") and not self.cardinalities:
            raise ConfigError(f"variant {variant.name} needs the SID's cardinalities")
        if variant.kind == "sid":
            if variant.n > len(self.cardinalities):
                raise ConfigError(f"variant {variant.name} needs a SID with >= {variant.n} code positions, "
                                  f"this one has {len(self.cardinalities)}")
            self.prefix_sizes = prefix_hash_sizes(self.cardinalities, variant.n)
            self.table_rows = [min(size, int(max_table_rows)) for size in self.prefix_sizes]
            # row 0 of every table is the reserved "no SID" row (kept at zero by padding_idx)
            self.ngram_tables = nn.ModuleList(nn.Embedding(rows + 1, dim, padding_idx=0) for rows in self.table_rows)
        elif variant.kind == "side":
            self.omega = nn.Linear(len(self.cardinalities), dim, bias=False)
        elif variant.kind == "raw":
            if raw is None:
                raise ConfigError("variant raw needs the raw content embeddings")
            self.raw = raw
            self.raw_proj = nn.Linear(raw.dim, dim, bias=False)  # no bias: an item without one adds zero

    def forward(self, item_ids: torch.Tensor, sids: torch.Tensor) -> torch.Tensor:
        out = self.item_table(item_ids % self.item_buckets)
        kind = self.variant.kind
        if kind == "id":
            return out
        if kind == "raw":
            return out + self.raw_proj(self.raw(item_ids))
        has_sid = sids >= 0
        if kind == "sid":
            for size, rows, table in zip(self.prefix_sizes, self.table_rows, self.ngram_tables):
                ngram = torch.where(has_sid, (sids % size) % rows + 1, torch.zeros_like(sids))
                out = out + table(ngram)
            return out
        codes = side_codes_torch(torch.where(has_sid, sids, torch.zeros_like(sids)).reshape(-1), self.cardinalities)
        codes = codes.reshape(*sids.shape, len(self.cardinalities)) * has_sid.unsqueeze(-1)
        return out + self.omega(codes)
