"""Quantizer registry: ``build(name, dim, bits, **params)`` and ``load(path)``.

Names: ``dpca``, ``structured``, ``fsq``, ``rq_kmeans``, ``rq_vae``, ``rq_gmm``, ``kmeans``. Any of
them runs on the raw embedding or inside the shared VQ-VAE (``vae=True``, or a dict of VQ-VAE
parameters such as ``{"latent_dim": 64, "hidden": [512]}``); ``vae=None`` takes the quantizer's own
default (only ``rq_vae`` defaults to the VQ-VAE). Classes are imported lazily so that importing
``sidlib.quantizers`` stays cheap.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import CONFIG_FILE, WEIGHTS_FILE, BatchStream, EMQuantizer, Quantizer, array_batches

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

NAMES: tuple[str, ...] = tuple(n for n in _CLASSES if n not in ("vqvae", "fusion"))


def quantizer_class(name: str) -> type[Quantizer]:
    """The class registered under ``name`` (clear error listing the valid names otherwise)."""
    if name not in _CLASSES:
        raise InvalidInputError(f"unknown quantizer {name!r}; choose one of: {', '.join(NAMES)}")
    module, attr = _CLASSES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build(name: str, dim: int, bits: float = 24, *, vae: bool | dict[str, Any] | None = None, **params: Any) -> Quantizer:
    """Build an unfitted quantizer whose layout spends about ``bits`` bits (see each class's doc
    for how the budget maps to levels/codebooks). ``params`` go to the quantizer's constructor."""
    cls = quantizer_class(name)
    use_vae = getattr(cls, "default_vae", False) if vae is None else vae is not False
    if not use_vae:
        return cls(dim=dim, bits=bits, **params)
    vae_params = vae if isinstance(vae, dict) else {}
    from sidlib.quantizers.vqvae import VQVAE

    return VQVAE(dim=dim, quantizer=name, bits=bits, quantizer_params=params, **vae_params)


def load(path: str | Path) -> Quantizer:
    """Rebuild a saved quantizer: config from JSON, tensors with ``torch.load(weights_only=True)``."""
    path = Path(path)
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise InvalidInputError(f"no saved quantizer at {path} (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    spec = json.loads(config_file.read_text())
    q = quantizer_class(spec["name"])(**spec["params"])
    return q.load_weights(torch.load(weights_file, map_location="cpu", weights_only=True))


__all__ = ["NAMES", "BatchStream", "EMQuantizer", "Quantizer", "array_batches", "build", "load", "quantizer_class"]
