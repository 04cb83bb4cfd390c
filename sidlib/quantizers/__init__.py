"""Quantizer registry: ``build(name, dim, bits, **params)`` and ``load(path)``.

Names: ``dpca``, ``structured``, ``fsq``, ``rq_kmeans``, ``rq_vae``, ``rq_gmm``, ``kmeans``. Any of
them runs on the raw embedding or inside the shared VQ-VAE (``vae=True``, or a dict of VQ-VAE
parameters such as ``{"latent_dim": 64, "hidden": [512]}``); ``vae=None`` takes the quantizer's own
default (only ``rq_vae`` defaults to the VQ-VAE). Classes are imported lazily so that importing
``sidlib.quantizers`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from sidlib.quantizers.base import BatchStream, EMQuantizer, Quantizer, array_batches
from sidlib.quantizers.registry import NAMES, quantizer_class
from sidlib.quantizers.serialize import load


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


__all__ = ["NAMES", "BatchStream", "EMQuantizer", "Quantizer", "array_batches", "build", "load", "quantizer_class"]
