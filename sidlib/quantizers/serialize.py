"""The one way a quantizer is written and read back: its registered ``name``, its constructor
arguments (``config``, JSON) and its tensors (``state_dict``); nothing is pickled, and reading
rebuilds the class from the config and loads the tensors with ``torch.load(weights_only=True)``.

Two containers of that payload: a directory (``config.json`` + ``weights.pt``; what
``Quantizer.save``/``sidlib.quantizers.load`` and the artifact bundles use) and bytes (what Spark
tasks and the driver exchange).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers.registry import quantizer_class

if TYPE_CHECKING:
    from sidlib.quantizers.base import Quantizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"


def save(quantizer: "Quantizer", path: str | Path) -> Path:
    """Write ``config.json`` (``{"name", "params"}``) and ``weights.pt`` (tensors only) into directory ``path``."""
    path = Path(path)
    config = _json(quantizer, {"name": quantizer.name, "params": quantizer.config}, indent=2, sort_keys=True)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(config)
    torch.save(_state(quantizer), path / WEIGHTS_FILE)
    return path


def load(path: str | Path) -> "Quantizer":
    """Rebuild a quantizer written by :func:`save`."""
    path = Path(path)
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise InvalidInputError(f"no saved quantizer at {path} (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    config = json.loads(config_file.read_text())
    return _rebuild(config["name"], config["params"], torch.load(weights_file, map_location="cpu", weights_only=True))


def to_bytes(quantizer: "Quantizer") -> bytes:
    """The same payload as :func:`save` in one buffer (the config as a JSON string, so the buffer
    holds only tensors, strings and dicts)."""
    buffer = io.BytesIO()
    payload = {"name": quantizer.name, "params": _json(quantizer, quantizer.config), "state": _state(quantizer)}
    torch.save(payload, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> "Quantizer":
    """Rebuild a quantizer written by :func:`to_bytes`."""
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return _rebuild(payload["name"], json.loads(payload["params"]), payload["state"])


def _json(quantizer: "Quantizer", value: Any, **options: Any) -> str:
    try:
        return json.dumps(value, **options)
    except TypeError as exc:
        raise InvalidInputError(f"{quantizer.name}: its constructor arguments are not all JSON values, so it "
                                f"cannot be saved ({exc})") from None


def _state(quantizer: "Quantizer") -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in quantizer.state_dict().items()}


def _rebuild(name: str, params: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> "Quantizer":
    return quantizer_class(name)(**params).load_weights(state)
