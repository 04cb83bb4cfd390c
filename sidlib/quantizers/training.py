"""The one mini-batch gradient loop behind every neural quantizer and the VQ-VAE.

:func:`train` minimises ``objective(output, x) + extra`` over mini-batches ``x``, where a
:data:`Forward` gives the model's ``output`` and its own loss terms ``extra`` (a quantizer's
commitment and codebook terms from :class:`~sidlib.quantizers.base.QuantizeOutput`), and the
:data:`Objective` scores the output against the input: a :class:`Reconstruction` loss for the
quantizers of an embedding, the per-signal losses for the fusion model. Adam, epochs over a
:data:`~sidlib.quantizers.base.BatchStream` re-chunked into mini-batches, a seeded generator for
every random draw so a fit is reproducible on CPU, progress on :mod:`logging`, and an optional stop
once the epoch loss stops improving.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import BatchStream, Quantizer, _take_sample
from sidlib.validation import as_float_matrix

log = logging.getLogger(__name__)

#: ``x -> (output, extra loss)``: one differentiable pass of a model over a mini-batch.
Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: ``(output, x) -> loss``: how a model's output on rows ``x`` is scored (a scalar to minimise).
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

RECON_LOSSES = ("cosine", "mse")

#: Rows taken from the head of the stream to initialise codebooks from data before training.
INIT_SAMPLE_ROWS = 16384


@dataclass(frozen=True)
class TrainSettings:
    """Knobs of :func:`train` (what a quantizer's ``**training`` keyword arguments set).

    ``patience`` stops training after that many consecutive epochs that each moved the loss by less
    than ``min_improvement`` (relative) from the epoch before (see :func:`plateaued`); 0 always runs
    all ``epochs``.
    """

    epochs: int = 20
    lr: float = 2e-3
    batch_size: int = 256
    patience: int = 3
    min_improvement: float = 1e-3
    log_every: int = 5

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.patience < 0:
            raise InvalidInputError(
                f"need epochs >= 0, batch_size >= 1, lr > 0, patience >= 0; got {asdict(self)}"
            )


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean over rows of ``1 - cos(x_hat, x)`` or of ``||x_hat - x||^2`` (per row, not per element,
    so on unit vectors the two are on the same scale: ``||a - b||^2 = 2 (1 - cos)``)."""
    if kind == "cosine":
        return (1 - nn.functional.cosine_similarity(x_hat, x, dim=1)).mean()
    return (x_hat - x).pow(2).sum(1).mean()


@dataclass(frozen=True)
class Reconstruction:
    """The :data:`Objective` of a model that reproduces its input: :func:`reconstruction_loss` of
    kind ``kind`` (``cosine`` or ``mse``, a quantizer's ``recon`` argument)."""

    kind: str = "cosine"

    def __post_init__(self) -> None:
        if self.kind not in RECON_LOSSES:
            raise InvalidInputError(f"recon must be one of {RECON_LOSSES}, got {self.kind!r}")

    def __call__(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(x_hat, x, self.kind)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build parameters under a fixed seed without disturbing the caller's RNG, so that
    ``type(q)(**q.config)`` starts from the same weights (fits are then reproducible)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def minibatches(
    batches: BatchStream, batch_size: int, dim: int, device: torch.device, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """One pass over the stream, each stream batch validated, shuffled and cut into mini-batches."""
    for batch in batches():
        x = torch.from_numpy(as_float_matrix(batch, dim, name="batch"))
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            yield x[order[start:start + batch_size]].to(device)


def train(
    forward: Forward,
    objective: Objective,
    parameters: Iterable[nn.Parameter],
    batches: BatchStream,
    settings: TrainSettings,
    *,
    dim: int,
    device: torch.device,
    generator: torch.Generator,
    after_step: Callable[[], None] | None = None,
    label: str = "train",
) -> list[float]:
    """Run Adam on :func:`step_loss` (``objective(output, x) + extra``); returns the mean loss of each epoch.

    ``after_step`` runs after every optimizer step, outside autograd (e.g. dead-code reset).
    """
    params = [p for p in parameters if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    history: list[float] = []
    stale = 0
    for epoch in range(settings.epochs):
        total, rows = torch.zeros((), device=device), 0
        for x in minibatches(batches, settings.batch_size, dim, device, generator):
            loss = step_loss(forward, objective, x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step()
            total += loss.detach() * len(x)
            rows += len(x)
        if rows == 0:
            raise InvalidInputError("no training data: the batch stream produced no rows")
        history.append(float(total) / rows)
        if (epoch + 1) % settings.log_every == 0 or epoch + 1 == settings.epochs:
            log.info("%s epoch %d/%d loss %.5f", label, epoch + 1, settings.epochs, history[-1])
        stale = stale + 1 if plateaued(history, settings.min_improvement) else 0
        if settings.patience and stale >= settings.patience:
            log.info("%s stopped at epoch %d: loss flat for %d epochs", label, epoch + 1, stale)
            break
    return history


def step_loss(forward: Forward, objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """The loss of one training step on rows ``x``: the objective of the output plus the model's own terms."""
    output, extra = forward(x)
    return objective(output, x) + extra


def plateaued(history: list[float], min_improvement: float) -> bool:
    """Whether the last epoch moved the loss by less than ``min_improvement`` (relative) from the one
    before: the loss has flattened. A rising loss is not a plateau: quantized training often climbs
    for a few epochs first (the encoder and the codebooks trade the commitment and codebook terms
    while dead codes are re-seeded), and stopping on "no better than the best" there ended RQ-VAE
    training after 4 of 60 epochs, at twice the converged loss."""
    if len(history) < 2:
        return False
    return abs(history[-2] - history[-1]) < min_improvement * abs(history[-2])


class NeuralQuantizer(Quantizer):
    """A quantizer fit by :func:`train` after a data-driven initialisation.

    Subclasses implement :meth:`init_from_sample` (codebooks from a sample, so training does not
    start from noise) and :meth:`quantize`; they may hook :meth:`after_train_step`. ``recon`` picks
    the :class:`Reconstruction` objective the quantizer is trained on; keyword arguments
    ``training`` are the :class:`TrainSettings` fields.
    """

    def __init__(
        self, dim: int, *, recon: str = "cosine", seed: int = 0, device: str | None = "auto",
        encode_batch_size: int = 65536, **training: Any,
    ):
        super().__init__(dim, seed=seed, device=device, encode_batch_size=encode_batch_size)
        try:
            self.settings = TrainSettings(**training)
        except TypeError as exc:
            raise InvalidInputError(f"{type(self).__name__}: {exc}") from None
        #: How :func:`train` scores this model's output on a mini-batch.
        self.objective: Objective = Reconstruction(recon)
        #: CPU generator for every random draw of a fit (shuffles, sampling, dropout), reseeded per fit.
        self.generator = torch.Generator().manual_seed(self.seed)
        #: Mean training loss of each epoch of the last fit.
        self.history: list[float] = []
        #: Set by :meth:`warm_start`: the next fit keeps the loaded state instead of initialising it.
        self.warm = False

    def fit_stream(self, batches: BatchStream) -> "NeuralQuantizer":
        self.to_preferred_device().train()
        self.prepare_training(self.sample_rows(batches))
        self.history = train(
            self.training_forward, self.objective, self.parameters(), batches, self.settings, dim=self.dim,
            device=self.torch_device, generator=self.generator, after_step=self.after_train_step, label=self.name,
        )
        self.refine(batches)
        self.finish_fit()
        return self

    def _warm_start_from(self, previous: Quantizer) -> None:
        """Load ``previous``'s parameters and buffers; training then continues from them."""
        self.load_state_dict(previous.state_dict())
        self.warm = True

    def finish_fit(self) -> None:
        self.warm = False
        super().finish_fit()

    def sample_rows(self, batches: BatchStream) -> torch.Tensor:
        """The head of the stream as a tensor on this module's device (for initialisation)."""
        return torch.from_numpy(_take_sample(batches, INIT_SAMPLE_ROWS, self.dim)).to(self.torch_device)

    def prepare_training(self, sample: torch.Tensor) -> None:
        """Reseed the generator and initialise the learned state from ``sample`` (no gradients; not
        after a warm start). The VQ-VAE calls this on a sample of encoder latents for its inner quantizer."""
        self.generator.manual_seed(self.seed)
        with torch.no_grad():
            if not self.warm:  # a warm start's loaded state is the starting point
                self.init_from_sample(sample)
            self.begin_training()

    def begin_training(self) -> None:
        """Set up what training tracks (after the initialisation or a warm start); default nothing."""

    @abstractmethod
    def init_from_sample(self, sample: torch.Tensor) -> None:
        """Set codebooks/projections from a float32 ``[n, dim]`` sample (called under no_grad)."""

    def after_train_step(self) -> None:
        """Called after each optimizer step (under no_grad); default nothing."""

    def refine(self, batches: BatchStream) -> bool:
        """Called once after gradient training with the training stream (in a VQ-VAE: the encoder's
        latents) to polish codebooks by other means; returns whether anything changed, so a VQ-VAE
        knows to re-fit its decoder to the new codewords. Default: nothing, ``False``."""
        return False

    def training_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The :data:`Forward` of the training phase: the output :attr:`objective` scores and the
        quantizer's own loss terms."""
        out = self.quantize(x)
        return out.z_q, out.loss

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The (differentiable) loss a training step minimises on rows ``x``."""
        return step_loss(self.training_forward, self.objective, x)
