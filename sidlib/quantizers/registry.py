"""Which class each quantizer name stands for. Classes are imported on first use, so that importing
the registry (and ``sidlib.quantizers``) stays cheap and imports no quantizer module."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sidlib.errors import InvalidInputError

if TYPE_CHECKING:
    from sidlib.quantizers.base import Quantizer

_CLASSES: dict[str, str] = {
    "dpca": "sidlib.quantizers.structured:DPCA",
    "structured": "sidlib.quantizers.structured:StructuredQuantizer",
    "fsq": "sidlib.quantizers.fsq:FSQ",
    "rq_kmeans": "sidlib.quantizers.rq_kmeans:RQKMeans",
    "rq_vae": "sidlib.quantizers.rq_vae:RQVAE",
    "rq_gmm": "sidlib.quantizers.rq_gmm:RQGMM",
    "kmeans": "sidlib.quantizers.kmeans:KMeans",
    "vqvae": "sidlib.quantizers.vqvae:VQVAE",
    "fusion": "sidlib.quantizers.fusion:FusionQuantizer",
}

#: The quantizers of an embedding, each usable on its own or inside the VQ-VAE (``vqvae`` and
#: ``fusion`` are models around one of them).
NAMES: tuple[str, ...] = tuple(n for n in _CLASSES if n not in ("vqvae", "fusion"))


def quantizer_class(name: str) -> type["Quantizer"]:
    """The class registered under ``name`` (clear error listing the valid names otherwise)."""
    if name not in _CLASSES:
        raise InvalidInputError(f"unknown quantizer {name!r}; choose one of: {', '.join(NAMES)}")
    module, attr = _CLASSES[name].split(":")
    return getattr(importlib.import_module(module), attr)
