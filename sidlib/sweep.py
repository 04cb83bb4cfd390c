"""Layout grids for a bit budget: the SIDE paper's hyper-parameter search space per quantizer.

Pure Python (no Spark): ``layout_grid(name, bits)`` lists constructor parameters whose code layout
spends the budget to within ``tolerance`` bits; the sweep job fits one per Spark task."""

from __future__ import annotations

import math
from typing import Any

from sidlib.errors import ConfigError
from sidlib.quantizers.scalar import ternary_digits

#: Candidate values per knob; a layout is kept only if it lands on the bit budget.
STRUCTURED_POINTS = (3, 4, 8, 16)
STRUCTURED_LINES = (1, 4, 16, 64)
GROUPS = (1, 2, 3, 4, 5)
RESIDUAL_LEVELS = (1, 2, 3, 4, 6, 8)
FSQ_LEVELS = (3, 4, 5, 8)
MAX_CODEBOOK = 4096


def layout_bits(name: str, params: dict[str, Any]) -> float:
    """Bits spent by a layout (without building the quantizer)."""
    if name == "dpca":
        return params["groups"] * params["levels"] * math.log2(3)
    if name == "structured":
        return params["groups"] * params["levels"] * math.log2(params["lines"] * params["points"])
    if name == "fsq":
        return sum(math.log2(level) for level in params["levels"])
    return params["levels"] * math.log2(params["codebook_size"])


def layout_grid(name: str, bits: float, tolerance: float = 1.0) -> list[dict[str, Any]]:
    """Every layout of quantizer ``name`` within ``tolerance`` bits of ``bits``, smallest error first."""
    grid: list[dict[str, Any]] = []
    if name == "dpca":
        trits = ternary_digits(bits)
        grid = [{"groups": g, "levels": trits // g} for g in GROUPS if trits % g == 0]
    elif name == "structured":
        for points in STRUCTURED_POINTS:
            for lines in STRUCTURED_LINES:
                per_code = math.log2(lines * points)
                for groups in GROUPS:
                    levels = max(1, round(bits / (groups * per_code)))
                    grid.append({"lines": lines, "points": points, "groups": groups, "levels": levels})
    elif name == "fsq":
        grid = [{"levels": [level] * max(1, math.floor(bits / math.log2(level)))} for level in FSQ_LEVELS]
    elif name in ("rq_kmeans", "rq_gmm", "rq_vae"):
        for levels in RESIDUAL_LEVELS:
            size = 2 ** round(bits / levels)
            if 2 <= size <= MAX_CODEBOOK:
                grid.append({"levels": levels, "codebook_size": size})
    else:
        raise ConfigError(f"no layout grid for quantizer {name!r} (sweepable: dpca, structured, fsq, rq_kmeans, rq_gmm, rq_vae)")
    kept = [p for p in grid if abs(layout_bits(name, p) - bits) <= tolerance]
    unique = {repr(sorted(p.items())): p for p in kept}
    return sorted(unique.values(), key=lambda p: (abs(layout_bits(name, p) - bits), repr(sorted(p.items()))))
