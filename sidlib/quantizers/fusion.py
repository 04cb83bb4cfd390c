"""VQ-fusion (the SIDE paper): one Semantic ID for all of an item's content signals.

Per-signal encoders ``e_k``, a fusion network ``f`` to one latent, any registered quantizer on that
latent, a shared decoder ``r`` and per-signal decoders ``g_k``. The training loss is
``sum_k w_k * l_k`` with ``l_k`` chosen by the signal's kind:

* ``embedding``: ``1 - cos`` (direction only; decoded vectors are not rescaled);
* ``multilabel``: binary cross-entropy per label, averaged over labels (decoded as probabilities);
* ``categorical``: cross-entropy against a one-hot (or soft) target (decoded as a softmax).

Signals may have any dimensions, and an item may lack some of them: a missing signal's encoding is
zeroed before fusion, the presence flags go into the fusion network, and the signal's loss term is
masked, so such items are trained on and encoded from what they have instead of being dropped.

Input layout (what ``fit``/``encode`` take, one float row per item, ``dim = sum(d_k) + K``)::

    [ x_1 (d_1) | x_2 (d_2) | ... | x_K (d_K) | p_1 | p_2 | ... | p_K ]

Signals come in the order of the ``signals`` argument; ``p_k`` is 1.0 when the item has signal
``k`` and 0.0 when not, in which case ``x_k`` is all zeros (its values are ignored either way).
Multilabel and categorical slices hold values in [0, 1] (multi-hot / one-hot). Build it with
:func:`fusion_input`, cut it with :func:`split_output`; on Spark, ``read_fused`` in
``sidlib.spark.fused_rows`` builds the same rows from ``content_embeddings``. ``decode`` returns
the same layout with every signal reconstructed (also those the item lacked: a prediction from the
others) and flags 1.0.

The model is a :class:`~sidlib.quantizers.latent.LatentQuantizer` assembled from these networks,
the inner quantizer and the per-signal objective (:meth:`FusionLayout.loss`), so it trains exactly
as the VQ-VAE does (warm-up, joint straight-through training of a neural inner quantizer, staged fit
of an EM inner quantizer); only the parts differ. Per-signal quality of a fused SID is
:func:`sidlib.metrics.signal_report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import BatchStream
from sidlib.quantizers.latent import LatentQuantizer, check_sizes, inner_quantizer, mlp
from sidlib.quantizers.training import seeded
from sidlib.validation import as_float_matrix

#: How a signal is reconstructed and scored (module docstring).
SIGNAL_KINDS = ("embedding", "multilabel", "categorical")


@dataclass(frozen=True)
class Signal:
    """One input signal of the fused layout: its name, width, kind (one of :data:`SIGNAL_KINDS`) and loss weight."""

    name: str
    dim: int
    kind: str = "embedding"
    weight: float = 1.0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "Signal":
        unknown = set(spec) - {"name", "dim", "kind", "weight"}
        if unknown or "name" not in spec or "dim" not in spec:
            raise InvalidInputError(f"a signal is {{name, dim, kind?, weight?}}, got {dict(spec)}")
        signal = cls(str(spec["name"]), int(spec["dim"]), str(spec.get("kind", "embedding")),
                     float(spec.get("weight", 1.0)))
        too_small = signal.dim < (2 if signal.kind == "categorical" else 1)
        if signal.kind not in SIGNAL_KINDS or too_small or signal.weight < 0:
            raise InvalidInputError(f"signal {signal.name!r}: need kind in {SIGNAL_KINDS}, dim >= 1 "
                                    f"(>= 2 for categorical) and weight >= 0; got {dict(spec)}")
        return signal

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "kind": self.kind, "weight": self.weight}


class FusionLayout:
    """Where each signal and presence flag sits in a fused row, and the per-kind activation and loss.

    Pure bookkeeping (no learned state): the quantizer, the Spark job and callers building rows all
    derive the layout from the same ``signals`` list, so they cannot disagree about it.
    """

    def __init__(self, signals: Sequence[Mapping[str, Any] | Signal]):
        self.signals = [s if isinstance(s, Signal) else Signal.from_spec(s) for s in signals]
        names = [s.name for s in self.signals]
        if not names or len(set(names)) != len(names):
            raise InvalidInputError(f"need one or more signals with distinct names, got {names}")
        if sum(s.weight for s in self.signals) <= 0:
            raise InvalidInputError("at least one signal needs a positive weight")
        bounds = np.cumsum([0] + [s.dim for s in self.signals])
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.flags = slice(int(bounds[-1]), int(bounds[-1]) + len(self.signals))
        self.dim = self.flags.stop

    def specs(self) -> list[dict[str, Any]]:
        return [s.spec() for s in self.signals]

    # ------------------------------------------------------------------ numpy
    def pack(self, values: Mapping[str, Any]) -> np.ndarray:
        """Fused float32 rows from per-signal values (see :func:`fusion_input`)."""
        unknown = set(values) - {s.name for s in self.signals}
        missing = [s.name for s in self.signals if s.name not in values]
        if unknown or missing:
            raise InvalidInputError(f"values must name exactly the signals {[s.name for s in self.signals]}; "
                                    f"unknown {sorted(unknown)}, missing {missing}")
        parts = [_signal_rows(values[s.name], s) for s in self.signals]
        n_rows = {len(x) for x, _ in parts}
        if len(n_rows) != 1:
            raise InvalidInputError(f"signals have different numbers of rows: "
                                    f"{ {s.name: len(x) for s, (x, _) in zip(self.signals, parts)} }")
        flags = np.stack([present for _, present in parts], 1).astype(np.float32)
        return as_float_matrix(np.concatenate([x for x, _ in parts] + [flags], 1), self.dim)

    def split(self, X: Any) -> dict[str, np.ndarray]:
        """Each signal's columns of fused rows (``[n, d_k]`` views), by name."""
        arr = as_float_matrix(X, self.dim)
        return {s.name: arr[:, cols] for s, cols in zip(self.signals, self.slices)}

    def presence(self, X: Any) -> dict[str, np.ndarray]:
        """Whether each row has each signal (its flag), by name."""
        arr = as_float_matrix(X, self.dim)
        return {s.name: arr[:, self.flags.start + k] == 1 for k, s in enumerate(self.signals)}

    def check(self, X: Any, name: str = "X") -> np.ndarray:
        """Validated fused rows: the base checks plus flags in {0, 1} and label slices in [0, 1]."""
        arr = as_float_matrix(X, self.dim, name=name)
        flags = arr[:, self.flags]
        if not np.isin(flags, (0.0, 1.0)).all():
            raise InvalidInputError(f"{name}: presence flags (last {len(self.signals)} columns) must be 0.0 or 1.0; "
                                    f"is the row layout {[s.name for s in self.signals]} + flags?")
        for s, cols in zip(self.signals, self.slices):
            if s.kind != "embedding" and ((arr[:, cols] < 0) | (arr[:, cols] > 1)).any():
                raise InvalidInputError(f"{name}: {s.kind} signal {s.name!r} must hold values in [0, 1]")
        return arr

    # ------------------------------------------------------------------ torch
    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Decoder outputs to the output layout: embeddings as they are, label logits to
        probabilities, flags kept (the decoder emits 1.0)."""
        parts = [_ACTIVATIONS[s.kind](raw[:, cols]) for s, cols in zip(self.signals, self.slices)]
        return torch.cat(parts + [raw[:, self.flags]], 1)

    def losses(self, raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``[K]`` per-signal losses of decoder outputs ``raw`` against fused rows ``x``: each the
        mean over the rows that have the signal (0 when none does). Masking by multiplication keeps a
        missing signal's values, whatever they are, out of the loss and of every gradient."""
        present = x[:, self.flags]
        terms = []
        for k, (s, cols) in enumerate(zip(self.signals, self.slices)):
            per_row = _LOSSES[s.kind](raw[:, cols], x[:, cols])
            terms.append((per_row * present[:, k]).sum() / present[:, k].sum().clamp_min(1))
        return torch.stack(terms)

    def loss(self, raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``sum_k w_k l_k``: the objective the networks are trained on."""
        weights = torch.tensor([s.weight for s in self.signals], dtype=raw.dtype, device=raw.device)
        return (weights * self.losses(raw, x)).sum()


def _signal_rows(values: Any, signal: Signal) -> tuple[np.ndarray, np.ndarray]:
    """``[n, d]`` float32 values (zeros where missing) and the ``[n]`` presence mask of one signal.

    A 2-D array means every row has the signal; a sequence (list, pandas Series) may hold ``None``
    or a scalar NaN for a row without it (what a left join of per-signal tables gives)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray) and values.ndim == 2:
        x = as_float_matrix(values, signal.dim, name=f"signal {signal.name!r}")
        return x, np.ones(len(x), dtype=bool)
    rows = list(values)
    present = np.array([not (r is None or (np.ndim(r) == 0 and np.isnan(r))) for r in rows], dtype=bool)
    x = np.zeros((len(rows), signal.dim), dtype=np.float32)
    if present.any():
        x[present] = as_float_matrix(np.stack([np.asarray(r, dtype=np.float32) for r, p in zip(rows, present) if p]),
                                     signal.dim, name=f"signal {signal.name!r}")
    return x, present


def _embedding_loss(raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return 1 - F.cosine_similarity(raw, x, dim=1)


def _multilabel_loss(raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(raw, x, reduction="none").mean(1)


def _categorical_loss(raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(raw, x, reduction="none")


_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "embedding": _embedding_loss, "multilabel": _multilabel_loss, "categorical": _categorical_loss,
}
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "embedding": lambda t: t, "multilabel": torch.sigmoid, "categorical": lambda t: torch.softmax(t, 1),
}


def fusion_input(signals: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> np.ndarray:
    """The fused rows ``[n, sum(d_k) + K]`` that :class:`FusionQuantizer` takes.

    ``signals`` is the quantizer's ``signals`` list; ``values`` maps every signal name to its rows:
    a ``[n, d_k]`` array (all present) or a length-``n`` sequence of vectors with ``None``/NaN for
    items that lack the signal. Missing slices become zeros with flag 0.0.
    """
    return FusionLayout(signals).pack(values)


def split_output(signals: Sequence[Mapping[str, Any]], X: Any) -> dict[str, np.ndarray]:
    """Each signal's columns of fused rows (input or ``decode`` output), by name."""
    return FusionLayout(signals).split(X)


def _hidden_block(sizes: Sequence[int]) -> nn.Sequential:
    """:func:`mlp` whose output is itself a hidden layer (LayerNorm, GELU), for a network that
    feeds another one rather than producing the final output."""
    return nn.Sequential(*mlp(sizes), nn.LayerNorm(sizes[-1]), nn.GELU())


class FusionEncoder(nn.Module):
    """``e_k`` per signal (to ``signal_hidden``), zeroed where the signal is missing, concatenated
    with the presence flags (so "no credits" is not read as "credits of value zero"), then the
    fusion network ``f`` down to the latent."""

    def __init__(self, layout: FusionLayout, signal_hidden: int, hidden: Sequence[int], latent_dim: int):
        super().__init__()
        self.slices, self.flags = layout.slices, layout.flags
        self.signal_encoders = nn.ModuleList(_hidden_block([s.dim, signal_hidden]) for s in layout.signals)
        self.fusion = mlp([len(layout.signals) * (signal_hidden + 1), *hidden, latent_dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        present = x[:, self.flags]
        parts = [enc(x[:, cols]) * present[:, k:k + 1]
                 for k, (enc, cols) in enumerate(zip(self.signal_encoders, self.slices))]
        return self.fusion(torch.cat(parts + [present], 1))


class FusionDecoder(nn.Module):
    """The shared decoder ``r`` (latent to ``signal_hidden``, mirroring ``f``) and a linear head
    ``g_k`` per signal, emitting raw outputs (label logits) in the fused layout with flags 1.0."""

    def __init__(self, layout: FusionLayout, signal_hidden: int, hidden: Sequence[int], latent_dim: int):
        super().__init__()
        self.n_flags = len(layout.signals)
        self.shared = _hidden_block([latent_dim, *reversed(hidden), signal_hidden])
        self.signal_decoders = nn.ModuleList(nn.Linear(signal_hidden, s.dim) for s in layout.signals)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.shared(z)
        return torch.cat([dec(h) for dec in self.signal_decoders] + [h.new_ones(len(h), self.n_flags)], 1)


class FusionQuantizer(LatentQuantizer):
    """One SID over several signals (module docstring: layout, losses, masking).

    ``dim`` must equal ``sum(d_k) + len(signals)``. ``signals`` is a list of
    ``{"name", "dim", "kind": "embedding"|"multilabel"|"categorical", "weight": 1.0}``.
    ``quantizer``/``bits``/``quantizer_params`` pick the quantizer on the fused latent exactly as in
    the VQ-VAE (default DPCA, the paper's choice); ``hidden`` and ``latent_dim`` shape ``f`` and
    ``r``, ``signal_hidden`` the width of each ``e_k`` output and of ``r``'s output. ``warmup_epochs``
    and ``training`` are as for the VQ-VAE; there is no ``recon``: the loss of each signal follows its kind.
    """

    name = "fusion"

    def __init__(
        self, dim: int, bits: float = 24, *, signals: Sequence[Mapping[str, Any]], quantizer: str = "dpca",
        quantizer_params: Mapping[str, Any] | None = None, latent_dim: int = 64, hidden: Sequence[int] = (512,),
        signal_hidden: int = 256, warmup_epochs: int = 5, seed: int = 0, device: str | None = "auto",
        encode_batch_size: int = 65536, **training: Any,
    ):
        layout = FusionLayout(signals)
        if dim != layout.dim:
            dims = " + ".join(str(s.dim) for s in layout.signals)
            raise InvalidInputError(f"fusion dim {dim} does not match the signals: "
                                    f"{dims} + {len(layout.signals)} flags = {layout.dim}")
        if signal_hidden < 1:
            raise InvalidInputError(f"signal_hidden must be >= 1, got {signal_hidden}")
        check_sizes(latent_dim, hidden, warmup_epochs)
        with seeded(int(seed)):
            encoder = FusionEncoder(layout, int(signal_hidden), list(hidden), int(latent_dim))
            decoder = FusionDecoder(layout, int(signal_hidden), list(hidden), int(latent_dim))
            inner = inner_quantizer(self.name, quantizer, latent_dim, bits, quantizer_params, seed=seed, device=device)
        super().__init__(dim, encoder=encoder, decoder=decoder, inner=inner, objective=layout.loss,
                         warmup_epochs=warmup_epochs, seed=seed, device=device, encode_batch_size=encode_batch_size,
                         **training)
        self.layout = layout

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw decoder outputs to the fused layout (:meth:`FusionLayout.activate`)."""
        return self.layout.activate(raw)

    def encode(self, X: Any) -> np.ndarray:
        return super().encode(self.layout.check(X))

    def fit_stream(self, batches: BatchStream) -> "FusionQuantizer":
        super().fit_stream(lambda: (self.layout.check(b, name="batch") for b in batches()))
        return self


__all__ = ["SIGNAL_KINDS", "FusionLayout", "FusionQuantizer", "Signal", "fusion_input", "split_output"]
