"""Relabel a new version's codes to agree with the previous version's, without changing what they mean.

When the upstream embedding model changes, a refit cannot start from the previous parameters, and a
fresh fit numbers its clusters, lines and directions arbitrarily: a ranker trained on version v would
see unrelated ids after the switch. Each code position of a quantizer has a
:class:`~sidlib.quantizers.labels.LabelSymmetry`, the relabellings under which it encodes and decodes
exactly as before. On the items both versions
encode, :func:`alignment_maps` picks per position the relabelling that keeps the most of the previous
codes: a maximum-weight matching of lines (clusters) where they are unordered, then a direction flip
per line where its points are ordinal (DPCA, FSQ, structured points, whose order SIDE relies on).
Each position is matched on its own (level by level for residual quantizers): their meaning does not
depend on the labels of the levels before them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sidlib.quantizers.labels import LabelSymmetry, Relabel


def best_relabel(symmetry: LabelSymmetry, new: np.ndarray, old: np.ndarray) -> Relabel:
    """The relabelling of ``new`` codes (one position, int ``[n]``) allowed by ``symmetry`` that agrees
    with ``old`` on the most items: lines by maximum-weight matching of their co-occurrence counts,
    then each line's direction by majority of its points."""
    from scipy.optimize import linear_sum_assignment

    relabel = Relabel.identity(symmetry)
    new_line, new_point = np.divmod(new, symmetry.points)
    old_line, old_point = np.divmod(old, symmetry.points)
    line_map = relabel.line_map
    if symmetry.permute_lines and symmetry.lines > 1:
        counts = np.zeros((symmetry.lines, symmetry.lines), dtype=np.int64)
        np.add.at(counts, (new_line, old_line), 1)
        rows, cols = linear_sum_assignment(counts, maximize=True)
        line_map = np.empty(symmetry.lines, dtype=np.int64)
        line_map[rows] = cols
    flips = relabel.flips
    if symmetry.flip_points:
        same_line = line_map[new_line] == old_line
        kept = np.bincount(new_line[same_line & (new_point == old_point)], minlength=symmetry.lines)
        reversed_kept = np.bincount(new_line[same_line & (symmetry.points - 1 - new_point == old_point)],
                                    minlength=symmetry.lines)
        flips = reversed_kept > kept
    return Relabel(line_map, flips)


def alignment_maps(symmetries: list[LabelSymmetry], new: np.ndarray, old: np.ndarray) -> list[Relabel]:
    """Per position, :func:`best_relabel` of the new codes ``[n, positions]`` to the old ones."""
    if new.shape != old.shape or new.shape[1] != len(symmetries):
        raise ValueError(f"codes {new.shape} and {old.shape} do not match {len(symmetries)} positions")
    return [best_relabel(s, new[:, p], old[:, p]) for p, s in enumerate(symmetries)]


def apply_maps(symmetries: list[LabelSymmetry], maps: list[Relabel], codes: np.ndarray) -> np.ndarray:
    """``codes`` ``[n, positions]`` relabelled by ``maps``."""
    return np.stack([m.code_map(s)[codes[:, p]] for p, (s, m) in enumerate(zip(symmetries, maps))], 1)


def kept(new: np.ndarray, old: np.ndarray) -> dict[str, float]:
    """Shares of items whose first code and whose full code vector stayed the same."""
    if not len(new):
        return {"first_code": float("nan"), "full_sid": float("nan")}
    return {"first_code": float((new[:, 0] == old[:, 0]).mean()), "full_sid": float((new == old).all(1).mean())}


def align(quantizer: Any, embeddings: np.ndarray, previous_codes: np.ndarray) -> dict[str, Any]:
    """Relabel ``quantizer`` in place so that its codes of ``embeddings`` agree with
    ``previous_codes`` (the previous version's codes of the same items) as far as its
    :meth:`~sidlib.quantizers.Quantizer.label_symmetries` allow; returns what alignment kept (the
    manifest's ``alignment`` record). ``mismatch`` counts items whose relabelled quantizer's code is
    not the relabelled code (only exact ties between codewords can cause one)."""
    symmetries = quantizer.label_symmetries()
    if [s.cardinality for s in symmetries] != list(quantizer.cardinalities):
        raise ValueError(f"{quantizer.name}: label symmetries do not match cardinalities {quantizer.cardinalities}")
    new = quantizer.encode(embeddings)
    maps = alignment_maps(symmetries, new, np.asarray(previous_codes, dtype=np.int64))
    expected = apply_maps(symmetries, maps, new)
    quantizer.relabel(maps)
    aligned = quantizer.encode(embeddings)
    return {"items": int(len(new)), "before": kept(new, previous_codes), "after": kept(aligned, previous_codes),
            "positions_relabelled": int(sum(not m.is_identity for m in maps)),
            "mismatch": int((aligned != expected).any(1).sum())}
