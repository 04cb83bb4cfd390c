"""Deterministic row selection: splits and samples by a hash of a key, never by row order or
partitioning, so every engine and every rerun picks the same rows."""

from __future__ import annotations

from sidlib.spark.tables import sql_literal


def hash_fraction(column: str, salt: str) -> str:
    """SQL expression in [0, 1) from a hash of ``column`` and ``salt``: a deterministic split that does
    not depend on partitioning or row order."""
    return f"pmod(xxhash64({column}, {sql_literal(salt)}), 1000000) / 1000000.0"


def holdout_predicate(seed: int, fraction: float) -> str:
    """SQL predicate that is true for the ``fraction`` of items held out of a fit with ``seed`` (its
    metrics are computed on them; the sweep scores its layouts on them)."""
    return f"{hash_fraction('item_id', f'holdout-{seed}')} < {float(fraction)}"


def cold_item_predicate(seed: int, fraction: float) -> str:
    """SQL predicate that is true for the ``fraction`` of items the item-cold evaluation holds out of
    ranker training (``export.cold_item_fraction``): a salt of its own, independent of a fit's hold-out."""
    return f"{hash_fraction('item_id', f'cold-items-{seed}')} < {float(fraction)}"
