"""User histories assembled at read time from the compact layout (no Spark, no torch).

The compact layout stores each user's time-ordered events once (``user_histories``: per user and
chunk, the arrays of item id, ts, click and packed SID) and one small row per impression that points
into them (``hist_end``: how many of the user's events have a strictly smaller ``ts``). The history of
an impression for a length N chosen by the reader is then the user's events at positions
``[hist_end - N, hist_end)``, right-aligned, the same definition as the materialized ``sequences``
table (:mod:`sidlib.spark.sequences`), so both layouts give the same rows.

:class:`HistoryIndex` holds the events of the users of one bucket as flat arrays (one per column,
users one after another) with each user's offset. Assembling a batch is one row gather from a sliding
window view of those arrays: every history is a contiguous slice, so numpy copies rows of N values
instead of gathering N values one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Mapping

import numpy as np

from sidlib.errors import TableError

#: The history columns :meth:`HistoryIndex.assemble` returns, with the value of a padded slot.
HISTORY_COLUMNS = {"hist_item_ids": 0, "hist_ts": 0, "hist_clicks": 0, "hist_sids": -1}
#: ``user_histories`` array column -> assembled history column.
SOURCE_COLUMNS = {"item_ids": "hist_item_ids", "ts": "hist_ts", "clicks": "hist_clicks", "sids": "hist_sids"}


@dataclass(frozen=True)
class HistoryIndex:
    """The events of a set of users, served as histories of ``history_length`` events:
    ``values[column]`` holds ``history_length`` padding slots, then every user's events in time order,
    user after user; user ``users[i]`` owns ``values[...][offsets[i]:offsets[i] + lengths[i]]``."""

    users: np.ndarray  # sorted, unique int64
    offsets: np.ndarray
    lengths: np.ndarray
    values: Mapping[str, np.ndarray]
    history_length: int

    #: The ``user_histories`` array columns an index is built from, in :data:`HISTORY_COLUMNS` order.
    SOURCES = tuple(SOURCE_COLUMNS)

    @classmethod
    def from_table(cls, table: Any, history_length: int) -> "HistoryIndex":
        """From ``user_histories`` rows (a ``pyarrow.Table`` with ``user_id``, ``chunk`` and the
        :attr:`SOURCES` list columns, rows in any order; ``None``: no users). A user's chunks must be
        numbered ``0 .. C-1``."""
        n = int(history_length)
        if n < 1:
            raise TableError(f"history_length must be >= 1, got {n}")
        if table is None or table.num_rows == 0:
            empty = np.zeros(0, np.int64)
            return cls(users=empty, offsets=empty, lengths=empty, history_length=n,
                       values={name: np.full(n, HISTORY_COLUMNS[name], np.int64) for name in HISTORY_COLUMNS})
        table = table.sort_by([("user_id", "ascending"), ("chunk", "ascending")])
        user_ids = table.column("user_id").to_numpy().astype(np.int64)
        chunks = table.column("chunk").to_numpy().astype(np.int64)
        first = np.ones(len(user_ids), dtype=bool)
        first[1:] = user_ids[1:] != user_ids[:-1]
        rows = np.arange(len(chunks))
        expected = rows - np.maximum.accumulate(np.where(first, rows, 0))
        if not np.array_equal(chunks, expected):
            bad = int(user_ids[np.flatnonzero(chunks != expected)[0]])
            raise TableError(f"user_histories: user {bad}'s chunks are not numbered 0, 1, ... without gaps "
                             f"or repeats (a partial or mixed table)")
        sizes = None
        values: dict[str, np.ndarray] = {}
        for source, name in SOURCE_COLUMNS.items():
            column = table.column(source).combine_chunks()
            row_sizes = np.diff(column.offsets.to_numpy()).astype(np.int64)
            if sizes is None:
                sizes = row_sizes
            elif not np.array_equal(sizes, row_sizes):
                raise TableError(f"user_histories: {source} and item_ids differ in length in some row")
            flat = column.flatten().to_numpy(zero_copy_only=False)
            values[name] = np.concatenate([np.full(n, HISTORY_COLUMNS[name], dtype=np.int64), flat.astype(np.int64)])
        assert sizes is not None
        row_offsets = n + np.concatenate([[0], np.cumsum(sizes)])
        starts = np.flatnonzero(first)
        ends = np.append(starts[1:], len(user_ids))
        return cls(users=user_ids[starts], offsets=row_offsets[starts], lengths=row_offsets[ends] - row_offsets[starts],
                   values=values, history_length=n)

    @property
    def events(self) -> int:
        return int(self.lengths.sum())

    def assemble(self, user_ids: np.ndarray, hist_ends: np.ndarray,
                 columns: Collection[str] | None = None) -> dict[str, np.ndarray]:
        """For impressions ``(user_ids[i], hist_ends[i])``: ``hist_len`` ``[B]`` and, ``[B, N]`` each,
        the history columns (:data:`HISTORY_COLUMNS`, int64) and ``hist_mask`` (bool), right-aligned
        with the padding on the left; only those in ``columns`` when given."""
        n = self.history_length
        user_ids = np.asarray(user_ids, dtype=np.int64)
        ends = np.asarray(hist_ends, dtype=np.int64)
        if len(self.users):
            where = np.minimum(np.searchsorted(self.users, user_ids), len(self.users) - 1)
            known = self.users[where] == user_ids
            events = np.where(known, self.lengths[where], 0)  # each impression's user's event count
            offsets = np.where(known, self.offsets[where], n)
        else:  # no events at all: only impressions without history can be served
            known = np.zeros(len(user_ids), bool)
            events, offsets = np.zeros(len(user_ids), np.int64), np.full(len(user_ids), n)
        if not known.all() and (ends[~known] > 0).any():
            bad = int(user_ids[~known & (ends > 0)][0])
            raise TableError(f"user_histories has no events of user {bad}, whose impression points past them")
        if (ends < 0).any() or (ends > events).any():
            bad = int(np.flatnonzero((ends < 0) | (ends > events))[0])
            raise TableError(f"impression of user {int(user_ids[bad])} points at history position {int(ends[bad])} "
                             f"of {int(events[bad])} events: impressions and user_histories do not match")
        # the window [end - N, end) starts at offset + end - N; a user at offset N (the first) reads the
        # padding slots, any other one its predecessor's events, masked either way
        starts = offsets + ends - n
        lengths = np.minimum(ends, n)
        short = np.flatnonzero(lengths < n)  # rows with padding: their first n - length slots
        out: dict[str, np.ndarray] = {"hist_len": lengths}
        for name, pad in HISTORY_COLUMNS.items():
            if columns is None or name in columns:
                windows = np.lib.stride_tricks.sliding_window_view(self.values[name], n)[starts]
                for row, width in zip(short.tolist(), (n - lengths[short]).tolist()):
                    windows[row, :width] = pad  # a memset per short row: cheaper than a masked select
                out[name] = windows
        out["hist_mask"] = np.arange(n)[None, :] >= (n - lengths)[:, None]
        return out if columns is None else {name: values for name, values in out.items() if name in columns}
