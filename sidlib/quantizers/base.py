"""The one interface every sidlib quantizer implements (FAISS-style ``fit``/``encode``/``decode``).

A quantizer is a ``torch.nn.Module`` whose constructor arguments are its whole configuration, and
whose learned state lives in registered parameters/buffers whose shapes are fixed at construction.
``self.config`` is those arguments as the constructor received them, recorded by the base class
(:func:`records_config`) rather than by each class, so it cannot drift from the constructor: a
class that gains an argument saves and reloads it without further code. That makes ``save``/``load``
trivial and safe: a JSON config plus a tensors-only state dict read back with
``torch.load(weights_only=True)``, nothing unpickled (:mod:`sidlib.quantizers.serialize`).

Two families share it:

* **Neural** quantizers (dpca, structured, fsq, rq_vae) train by gradient descent with a
  straight-through estimator; they implement :meth:`Quantizer.fit_stream` as an epoch loop.
* **EM-style** quantizers (kmeans, rq_kmeans, rq_gmm) subclass :class:`EMQuantizer`: they fit level by
  level from *sufficient statistics* that add up across batches, so a Spark job can compute them per
  partition and sum them on the driver (``sidlib.spark`` uses exactly these three methods).
"""

from __future__ import annotations

import functools
import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sidlib.device import pick_device
from sidlib.errors import InvalidInputError
from sidlib.quantizers import serialize
from sidlib.quantizers.labels import LabelSymmetry, Relabel
from sidlib.validation import as_code_matrix, as_float_matrix, as_tensor

#: A factory of fresh passes over the training data: each call returns a new iterator of float
#: ``[batch, dim]`` arrays. EM needs several passes, so a one-shot iterator is not enough.
BatchStream = Callable[[], Iterable[Any]]


def array_batches(X: Any, batch_size: int = 8192, *, shuffle_seed: int | None = None) -> BatchStream:
    """Wrap an in-memory array as a :data:`BatchStream` (optionally reshuffled on every pass)."""
    arr = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    n_pass = [0]

    def passes() -> Iterator[np.ndarray]:
        order = None
        if shuffle_seed is not None:
            order = np.random.default_rng(shuffle_seed + n_pass[0]).permutation(len(arr))
            n_pass[0] += 1
        for start in range(0, len(arr), batch_size):
            idx = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
            yield arr[idx]

    return passes


def check_dim(dim: int) -> int:
    """``dim`` as an int, refused unless positive (also before a model builds layers of that width)."""
    if dim <= 0:
        raise InvalidInputError(f"dim must be positive, got {dim}")
    return int(dim)


def records_config(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a quantizer ``__init__`` so that the outermost constructor call of an instance (the one of
    its own class, not the ``super().__init__`` calls below it) records its bound arguments as
    ``self.config``: defaults filled in, ``**kwargs`` flattened, tuples as lists (the JSON form, so
    a saved and reloaded config compares equal). ``type(q)(**q.config)`` is then the same call.

    :class:`Quantizer` applies it to every subclass's ``__init__``; there is nothing to call by hand."""
    signature = inspect.signature(init)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
        raise TypeError(f"{init.__qualname__}: a quantizer constructor cannot take *args (its config is by name)")

    @functools.wraps(init)
    def recording(self: "Quantizer", *args: Any, **kwargs: Any) -> None:
        outermost = vars(next(c for c in type(self).__mro__ if "__init__" in vars(c)))["__init__"] is recording
        config = _bound_config(signature, self, args, kwargs) if outermost else None
        init(self, *args, **kwargs)
        if config is not None:
            self.config = config

    return recording


def _bound_config(signature: inspect.Signature, instance: Any, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = signature.bind(instance, *args, **kwargs)
    bound.apply_defaults()
    config: dict[str, Any] = {}
    for name, value in list(bound.arguments.items())[1:]:  # [0] is self
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            config.update({key: _plain(v) for key, v in value.items()})
        else:
            config[name] = _plain(value)
    return config


def _plain(value: Any) -> Any:
    """A copy of a constructor argument in its JSON form (lists for tuples, Python scalars for numpy
    ones); other objects are kept as they are (saving such a config fails, loudly)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class QuantizeOutput:
    """Result of the differentiable forward pass used for training and inside a VQ-VAE.

    ``z_q`` equals the quantized vector in value, but carries the straight-through gradient to ``z``;
    ``loss`` holds the quantizer's own terms (commitment + codebook), already weighted.
    """

    z_q: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor


class Quantizer(nn.Module, ABC):
    """Base class. Subclasses set ``name``, build all state in ``__init__`` and implement
    :meth:`encode_tensor`/:meth:`decode_tensor` on float32 tensors of the module's device plus
    :meth:`fit_stream`. The tensor methods are public so that a model running a quantizer inside its
    own forward pass (the VQ-VAE, a prefix view) needs nothing private of it."""

    name: ClassVar[str]
    #: The constructor arguments of this instance (see :func:`records_config`).
    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            cls.__init__ = records_config(cls.__init__)  # type: ignore[method-assign]

    @records_config
    def __init__(self, dim: int, *, seed: int = 0, device: str | None = "auto", encode_batch_size: int = 65536):
        super().__init__()
        self.dim = check_dim(dim)
        self.seed = int(seed)
        self.encode_batch_size = int(encode_batch_size)
        self.device_preference = device
        self.register_buffer("_fitted", torch.zeros((), dtype=torch.bool))

    # ----------------------------------------------------------------- layout
    @property
    @abstractmethod
    def cardinalities(self) -> list[int]:
        """Number of distinct values of each code position (its radix in the packed SID)."""

    @property
    def n_codes(self) -> int:
        return len(self.cardinalities)

    @property
    def bits(self) -> float:
        """Information content of one code vector: ``sum(log2(c))``."""
        return float(sum(math.log2(c) for c in self.cardinalities))

    @property
    def is_fitted(self) -> bool:
        return bool(self._fitted)

    # ---------------------------------------------------------------- training
    def fit(self, X: Any, *, batch_size: int = 8192) -> "Quantizer":
        """Fit on an in-memory ``[n, dim]`` array (validated first). Returns ``self``."""
        arr = as_float_matrix(X, self.dim)
        return self.fit_stream(array_batches(arr, batch_size, shuffle_seed=self.seed))

    @abstractmethod
    def fit_stream(self, batches: BatchStream) -> "Quantizer":
        """Fit from a stream of mini-batches (each pass is ``batches()``). Must call
        :meth:`finish_fit` at the end. Deterministic for a fixed ``seed`` and batch order."""

    def finish_fit(self) -> None:
        """Called once by whatever drove the fit (``fit_stream``, the Spark EM loop, a VQ-VAE
        training its inner quantizer), after the last step: marks the quantizer fitted."""
        self._fitted.fill_(True)

    def quantize(self, z: torch.Tensor) -> QuantizeOutput:
        """Differentiable quantization of ``z`` (STE), for training and for use inside a VQ-VAE.
        The default has no quantizer loss and passes gradients straight through."""
        codes = self.encode_tensor(z.detach())
        z_hat = self.decode_tensor(codes)
        return QuantizeOutput(z_q=z + (z_hat - z).detach(), codes=codes, loss=z.new_zeros(()))

    # --------------------------------------------------------------- inference
    @property
    def torch_device(self) -> torch.device:
        for t in list(self.parameters()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")

    def to_preferred_device(self) -> "Quantizer":
        """Move to the device named by the ``device`` argument (``auto`` = CUDA when visible)."""
        return self.to(pick_device(self.device_preference))

    def encode(self, X: Any) -> np.ndarray:
        """Codes of ``X`` as int64 ``[n, n_codes]``; rows are encoded in bounded batches."""
        self._require_fitted()
        arr = as_float_matrix(X, self.dim)
        out = np.empty((arr.shape[0], self.n_codes), dtype=np.int64)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            for start in range(0, arr.shape[0], self.encode_batch_size):
                chunk = as_tensor(arr[start:start + self.encode_batch_size]).to(self.torch_device)
                out[start:start + chunk.shape[0]] = self.encode_tensor(chunk).cpu().numpy()
        self.train(was_training)
        return out

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstruction float32 ``[n, dim]`` of code vectors (checked to be in range)."""
        self._require_fitted()
        arr = as_code_matrix(codes, self.cardinalities)
        out = np.empty((arr.shape[0], self.dim), dtype=np.float32)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            for start in range(0, arr.shape[0], self.encode_batch_size):
                chunk = as_tensor(arr[start:start + self.encode_batch_size]).to(self.torch_device)
                out[start:start + chunk.shape[0]] = self.decode_tensor(chunk).float().cpu().numpy()
        self.train(was_training)
        return out

    @abstractmethod
    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """float32 ``[b, dim]`` -> int64 ``[b, n_codes]`` on the module's device (no validation, no
        batching, autograd left to the caller): what :meth:`encode` runs per batch."""

    @abstractmethod
    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        """int64 ``[b, n_codes]`` -> float32 ``[b, dim]`` on the module's device (no validation):
        what :meth:`decode` runs per batch."""

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise InvalidInputError(f"{self.name} quantizer is not fitted: call fit() or load() first")

    # ------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``weights.pt`` (tensors only) into directory ``path``
        (:func:`sidlib.quantizers.serialize.save`; ``sidlib.quantizers.load`` reads it back)."""
        return serialize.save(self, path)

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> "Quantizer":
        self.load_state_dict(dict(state), strict=True)
        return self

    def extra_metrics(self) -> dict[str, float]:
        """Quantizer-specific diagnostics recorded with the artifact (e.g. GMM responsibility entropy)."""
        return {}

    # ------------------------------------------------------------ relabelling
    def label_symmetries(self) -> list[LabelSymmetry]:
        """Per code position, the relabellings that keep what its codes mean (:mod:`.labels`);
        by default none."""
        return [LabelSymmetry.fixed(c) for c in self.cardinalities]

    def relabel(self, maps: Sequence[Relabel]) -> "Quantizer":
        """Renumber the codes position by position (``maps[p]``, one of ``label_symmetries()[p]``'s) by
        permuting and negating parameters: the quantizer then encodes every input to the relabelled
        codes and decodes those as it decoded the old ones. Returns ``self``."""
        symmetries = self.label_symmetries()
        if len(maps) != len(symmetries):
            raise InvalidInputError(f"relabel needs one map per code position ({len(symmetries)} positions), "
                                    f"got {len(maps)}")
        for position, (symmetry, relabel) in enumerate(zip(symmetries, maps)):
            symmetry.check(relabel)
            if not relabel.is_identity:
                with torch.no_grad():
                    self._relabel_position(position, relabel)
        return self

    def _relabel_position(self, position: int, relabel: Relabel) -> None:
        """Apply ``relabel`` (checked allowed) to the parameters of code position ``position``."""
        raise InvalidInputError(f"{type(self).__name__} cannot relabel its codes")

    # ------------------------------------------------------------- warm start
    def warm_start(self, previous: "Quantizer") -> "Quantizer":
        """Start the next fit from ``previous``'s learned state instead of a fresh initialisation, so
        that a refit on similar data keeps what the codes mean (a recurring retrain's SIDs stay put).
        ``previous`` must be a fitted quantizer of the same class and layout. Returns ``self``."""
        reason = self.warm_start_refusal(previous)
        if reason is not None:
            raise InvalidInputError(f"cannot warm-start: {reason}")
        self._warm_start_from(previous)
        return self

    def warm_start_refusal(self, previous: "Quantizer") -> str | None:
        """Why :meth:`warm_start` from ``previous`` is impossible (another class, dim or layout, or not
        fitted), or ``None`` when it is possible."""
        if type(previous) is not type(self):
            return f"{type(self).__name__} from {type(previous).__name__}"
        if not previous.is_fitted:
            return "the previous quantizer was never fitted"
        if previous.dim != self.dim or previous.cardinalities != self.cardinalities:
            return (f"a {self.dim}-d quantizer with cardinalities {self.cardinalities} from a {previous.dim}-d one "
                    f"with {previous.cardinalities}")
        shapes = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in previous.state_dict().items()}
        if shapes != theirs:  # e.g. another hidden width or inner model inside a VQ-VAE
            differ = sorted(k for k in set(shapes) | set(theirs) if shapes.get(k) != theirs.get(k))
            return f"the models' state differs ({', '.join(differ[:3])}{', ...' if len(differ) > 3 else ''})"
        return None

    def _warm_start_from(self, previous: "Quantizer") -> None:
        """Take over ``previous``'s state for the next fit (checked compatible by :meth:`warm_start`)."""
        raise InvalidInputError(f"{type(self).__name__} has no warm start")


class EMQuantizer(Quantizer):
    """A quantizer fit level by level by EM from additive sufficient statistics.

    The distributed fit (and :meth:`fit_stream`) drives exactly this loop, so both give the same
    model for the same batches::

        for level in range(q.n_levels):
            q.init_level(level, sample)                  # e.g. k-means++ on the sample's residuals
            for it in range(q.level_iterations()):
                stats = sum(q.step_statistics(level, b) for b in batches)    # E-step, additive
                if q.apply_statistics(level, stats) < q.tol: break          # M-step, returns change
        q.refine(lambda: sum(q.step_statistics(None, b) for b in batches))  # joint rounds, if any
        q.finish_fit()

    ``level_statistics`` computes the residual of ``X`` after levels ``< level`` itself, so callers
    pass raw rows. ``apply_statistics`` must run on the object that ran ``init_level`` (it may re-seed
    empty clusters from the sample kept there); executors only run ``step_statistics``. Statistics are dicts of float64 numpy arrays; :func:`add_statistics` sums them.
    """

    n_levels: int
    max_iter: int
    tol: float

    @abstractmethod
    def init_level(self, level: int, sample: np.ndarray) -> None:
        """Initialise level ``level`` from a raw-row sample (residuals computed internally)."""

    @abstractmethod
    def level_statistics(self, level: int, X: np.ndarray) -> dict[str, np.ndarray]:
        """E-step on raw rows ``X``: additive statistics for level ``level``."""

    @abstractmethod
    def apply_statistics(self, level: int, stats: Mapping[str, np.ndarray]) -> float:
        """M-step from summed statistics; returns the relative change of the objective (for ``tol``)."""

    #: Rounds of joint refinement of all levels after the level-wise fit (0: none; see :meth:`refine`).
    refine_rounds: int = 0

    def refinement_statistics(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """E-step of a joint refinement round on raw rows ``X`` (quantizers with ``refine_rounds``)."""
        raise InvalidInputError(f"{type(self).__name__} has no joint refinement")

    def apply_refinement(self, stats: Mapping[str, np.ndarray], *, solve: bool) -> bool:
        """M-step of a refinement round from summed statistics (of the current parameters); with
        ``solve`` false only checks them. Returns whether another round should follow."""
        raise InvalidInputError(f"{type(self).__name__} has no joint refinement")

    def level_iterations(self) -> int:
        """At most how many EM steps each level gets in this fit (``max_iter``)."""
        return self.max_iter

    def step_statistics(self, level: int | None, X: np.ndarray) -> dict[str, np.ndarray]:
        """The E-step of level ``level``, or of a refinement round (``None``): what executors run."""
        return self.refinement_statistics(X) if level is None else self.level_statistics(level, X)

    def refine(self, statistics: Callable[[], Mapping[str, np.ndarray]]) -> int:
        """Run up to :attr:`refine_rounds` refinement rounds, each from the summed statistics
        ``statistics()`` of the current parameters, plus one last E-step that checks the last round
        (:meth:`apply_refinement` undoes a round that did not gain enough); returns the rounds solved."""
        rounds = 0
        for round_ in range(self.refine_rounds + 1 if self.refine_rounds else 0):
            if not self.apply_refinement(statistics(), solve=round_ < self.refine_rounds):
                break
            rounds += 1
        return rounds

    def fit_stream(self, batches: BatchStream, *, sample_size: int = 65536) -> "EMQuantizer":
        self.to_preferred_device()
        sample = _take_sample(batches, sample_size, self.dim)

        def statistics(level: int | None) -> dict[str, np.ndarray]:
            return add_statistics(self.step_statistics(level, as_float_matrix(b, self.dim, name="batch"))
                                  for b in batches())

        for level in range(self.n_levels):
            self.init_level(level, sample)
            for _ in range(self.level_iterations()):
                if self.apply_statistics(level, statistics(level)) < self.tol:
                    break
        self.refine(lambda: statistics(None))
        self.finish_fit()
        return self


def add_statistics(parts: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Sum sufficient statistics key by key (the reduce step of the distributed E-step)."""
    total: dict[str, np.ndarray] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total[key] + value if key in total else np.array(value, dtype=np.float64, copy=True)
    if not total:
        raise InvalidInputError("no training data: the batch stream produced no rows")
    return total


def _take_sample(batches: BatchStream, sample_size: int, dim: int) -> np.ndarray:
    """The first ``sample_size`` rows of the stream (the stream is expected to be shuffled)."""
    taken: list[np.ndarray] = []
    n = 0
    for batch in batches():
        arr = as_float_matrix(batch, dim, name="batch")
        taken.append(arr[: sample_size - n])
        n += len(taken[-1])
        if n >= sample_size:
            break
    if n == 0:
        raise InvalidInputError("no training data: the batch stream produced no rows")
    return np.concatenate(taken)
