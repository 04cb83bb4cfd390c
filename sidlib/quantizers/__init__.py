"""Quantizers: ``build(name, dim, bits, vae=..., **params)`` (a :class:`QuantizerSpec` built) and ``load(path)``.

Names: ``dpca``, ``structured``, ``fsq``, ``rq_kmeans``, ``rq_vae``, ``rq_gmm``, ``kmeans``. Any of
them runs on the raw embedding or inside the shared VQ-VAE (``vae=True``, or a dict of VQ-VAE
parameters such as ``{"latent_dim": 64, "hidden": [512]}``); ``vae=None`` takes the quantizer's own
default (only ``rq_vae`` defaults to the VQ-VAE): the rule of :class:`~sidlib.quantizers.spec.QuantizerSpec`.
Classes are imported lazily so that importing ``sidlib.quantizers`` stays cheap.
"""

from __future__ import annotations

from typing import Any, Mapping

from sidlib.quantizers.base import BatchStream, EMQuantizer, Quantizer, array_batches
from sidlib.quantizers.registry import NAMES, quantizer_class
from sidlib.quantizers.serialize import load
from sidlib.quantizers.spec import QuantizerSpec


def build(name: str, dim: int, bits: float = 24, *, vae: bool | Mapping[str, Any] | None = None,
          **params: Any) -> Quantizer:
    """``QuantizerSpec(name, bits, params, vae).build(dim)``: an unfitted quantizer whose layout spends
    about ``bits`` bits, ``params`` going to the quantizer's constructor."""
    return QuantizerSpec(name, bits, params, vae).build(dim)


__all__ = ["NAMES", "BatchStream", "EMQuantizer", "Quantizer", "QuantizerSpec", "array_batches", "build", "load",
           "quantizer_class"]
