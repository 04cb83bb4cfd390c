"""Versioned quantizer bundles under a configured artifact root.

Layout: ``<root>/v<NNNNNN>/`` holds ``quantizer/`` (``config.json`` + tensors-only ``weights.pt``) and
``manifest.json`` (what was trained, on which table version, with which config and seed, its held-out
metrics, and a SHA-256 of every file). Versions are integers shared by all signals, so a
``sid_version`` names exactly one bundle.

Guarantees:

* never overwrite: a version directory is claimed with an atomic ``mkdir`` before anything is written
  into it, so two concurrent fits get different versions;
* complete or invisible: the manifest is written last (atomically), and a version without one is
  ignored by :meth:`ArtifactStore.versions`;
* safe to load: checksums are verified and weights are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sidlib import __version__
from sidlib.errors import SidlibError, check_writable_dir
from sidlib.quantizers import Quantizer, serialize

MANIFEST = "manifest.json"
QUANTIZER_DIR = "quantizer"
_VERSION_DIR = re.compile(r"^v(\d{6})$")
#: What every reader of a manifest relies on.
MANIFEST_KEYS = ("signal", "model_version", "cardinalities", "dim", "files")


class ArtifactError(SidlibError):
    """An artifact version is missing, incomplete, corrupted or incompatible with the data."""


@dataclass(frozen=True)
class Artifact:
    version: int
    path: Path
    manifest: dict[str, Any]

    @property
    def signal(self) -> str:
        return str(self.manifest["signal"])

    @property
    def model_version(self) -> str:
        return str(self.manifest["model_version"])

    def load_quantizer(self) -> Quantizer:
        return serialize.load(self.path / QUANTIZER_DIR)


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def version_path(self, version: int) -> Path:
        if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 10**6:
            raise ArtifactError(f"invalid artifact version {version!r}")
        return self.root / f"v{version:06d}"

    def versions(self) -> list[int]:
        """Complete versions (manifest present), ascending."""
        if not self.root.is_dir():
            return []
        found = (_VERSION_DIR.match(p.name) for p in self.root.iterdir())
        return sorted(int(m[1]) for m in found if m and (self.root / m[0] / MANIFEST).is_file())

    def latest(self, signal: str | None = None) -> Artifact | None:
        for version in reversed(self.versions()):
            artifact = self.get(version, verify=False)
            if signal is None or artifact.signal == signal:
                return self.get(version)
        return None

    def check_writable(self) -> None:
        """Raise :class:`ArtifactError` unless versions can be published under the root (created if
        missing): a fit calls this before it trains, not after."""
        check_writable_dir(self.root, "artifacts.root", ArtifactError)

    def publish(self, quantizer: Quantizer, manifest: dict[str, Any]) -> Artifact:
        """Write ``quantizer`` and ``manifest`` as the next free version and return it."""
        self.check_writable()
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            serialize.save(quantizer, staging / QUANTIZER_DIR)
            files = {str(p.relative_to(staging)): _sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()}
            version = self._claim_next_version()
            target = self.version_path(version)
            for item in staging.iterdir():
                os.replace(item, target / item.name)
            full = {
                **manifest,
                "version": version,
                "quantizer": quantizer.name if quantizer.name != "vqvae" else f"vqvae({quantizer.config.get('quantizer')})",
                "cardinalities": quantizer.cardinalities,
                "bits": quantizer.bits,
                "dim": quantizer.dim,
                "created_at": datetime.now(timezone.utc).isoformat(),
                "sidlib_version": __version__,
                "files": files,
            }
            _atomic_write_json(target / MANIFEST, full)
            return Artifact(version, target, full)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _claim_next_version(self) -> int:
        existing = [int(m[1]) for m in (_VERSION_DIR.match(p.name) for p in self.root.iterdir()) if m]
        version = max(existing, default=0) + 1
        while True:
            try:
                self.version_path(version).mkdir()
                return version
            except FileExistsError:  # a concurrent fit claimed it first
                version += 1

    def get(self, version: int, *, verify: bool = True) -> Artifact:
        path = self.version_path(version)
        manifest_file = path / MANIFEST
        if not manifest_file.is_file():
            raise ArtifactError(f"artifact version {version} not found under {self.root}")
        manifest = _read_manifest(manifest_file, version)
        if verify:
            _verify_files(path, manifest["files"], version)
        return Artifact(version, path, manifest)


def _read_manifest(file: Path, version: int) -> dict[str, Any]:
    """The parsed manifest, or :class:`ArtifactError` if it is not JSON or lacks what loading needs."""
    try:
        manifest = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"artifact version {version}: {MANIFEST} is unreadable ({exc})") from None
    missing = [key for key in MANIFEST_KEYS if not isinstance(manifest, dict) or key not in manifest]
    if missing:
        raise ArtifactError(f"artifact version {version}: {MANIFEST} lacks {', '.join(missing)}")
    if not isinstance(manifest["files"], dict):
        raise ArtifactError(f"artifact version {version}: {MANIFEST} 'files' is not a mapping")
    return manifest


def _verify_files(path: Path, files: dict[str, str], version: int) -> None:
    """Every file the manifest lists exists inside the version with its checksum, and every file of the
    saved quantizer is listed: an unlisted file would be loaded unchecked."""
    on_disk = {str(p.relative_to(path)) for p in (path / QUANTIZER_DIR).rglob("*") if p.is_file()}
    unlisted = sorted(on_disk - set(files))
    if unlisted or not files:
        raise ArtifactError(f"artifact version {version}: {MANIFEST} has no checksum for "
                            f"{', '.join(unlisted) or 'any file'}")
    for name, digest in files.items():
        file = (path / name).resolve()
        if path not in file.parents or not file.is_file():
            raise ArtifactError(f"artifact version {version}: file {name} missing")
        if _sha256(file) != digest:
            raise ArtifactError(f"artifact version {version}: checksum mismatch for {name}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
