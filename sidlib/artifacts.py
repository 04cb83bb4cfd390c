"""Versioned quantizer bundles under a configured artifact root.

Layout: ``<root>/v<NNNNNN>/`` holds ``quantizer/`` (``config.json`` + tensors-only ``weights.pt``) and
``manifest.json`` (what was trained, on which table version, with which config and seed, its held-out
metrics, and a SHA-256 of every file). Versions are integers shared by all signals, so a
``sid_version`` names exactly one bundle.

Guarantees:

* never overwrite: a version is claimed by creating ``v<NNNNNN>/.claim`` exclusively (the create fails
  if the file exists) before anything is written into it, so two concurrent fits get different versions;
* complete or invisible: the manifest is written last, in one step, and a version without one is
  ignored by :meth:`ArtifactStore.versions`;
* safe to load: checksums are verified and weights are read with ``torch.load(weights_only=True)``.

``artifacts.root`` is a path or an ``fsspec`` URL, and each guarantee rests on the store underneath:

* **A local or shared POSIX path** (also NFS): the claim is ``open(O_CREAT | O_EXCL)``, the manifest a
  temporary file renamed over; both atomic. Bundles load in place.
* **A Databricks Volume** (``/Volumes/<catalog>/<schema>/<volume>/...``, a FUSE mount of object storage):
  the same calls, which the mount forwards to the volume's storage. Databricks does not document
  exclusive create or rename there as atomic against a concurrent writer, so run one fit at a time
  against a Volume (the Asset Bundle's job allows one run at a time), or use the storage's URL.
* **An fsspec URL** (``s3://``, ``abfss://``, ``gs://``, ``file://``; the scheme's fsspec package, e.g.
  ``s3fs``, installed on driver and executors): the claim is ``fs.open(claim, "xb")``, a conditional
  create (:data:`EXCLUSIVE_CREATE`: S3 ``If-None-Match: *``, GCS ``ifGenerationMatch=0``, ADLS
  ``If-None-Match``; ``O_EXCL`` for ``file://``; other backends are refused), and the manifest one
  object PUT, visible whole or not at all. Nothing is
  renamed (an object store's rename is a copy). Bundles are downloaded to a local cache, then verified.
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
CLAIM = ".claim"
_VERSION_DIR = re.compile(r"^v(\d{6})$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: What every reader of a manifest relies on.
MANIFEST_KEYS = ("signal", "model_version", "cardinalities", "dim", "files")
#: Where bundles of URL stores are downloaded to before they are verified and loaded (resolved: the
#: checks compare resolved paths, and a temp dir may sit behind a symlink, as macOS's does).
CACHE_DIR = Path(tempfile.gettempdir()).resolve() / "sidlib-artifacts"
_SCHEME_WITHOUT_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/(?!/)")
#: fsspec backends whose ``open(path, "xb")`` is a real conditional create, from which release:
#: s3fs sends ``If-None-Match`` for small files from 2025.7 (fsspec/s3fs#974), gcsfs and adlfs
#: implemented exclusive mode in 2024.12. Other backends may accept "xb" and overwrite.
EXCLUSIVE_CREATE = {"file": None, "local": None, "memory": None, "s3": ("s3fs", "2025.7.0"),
                    "s3a": ("s3fs", "2025.7.0"), "gs": ("gcsfs", "2024.12.0"), "gcs": ("gcsfs", "2024.12.0"),
                    "abfs": ("adlfs", "2024.12.0"), "abfss": ("adlfs", "2024.12.0"), "az": ("adlfs", "2024.12.0")}


def is_url(root: str | Path) -> bool:
    """Whether ``root`` is an fsspec URL (``scheme://...``) rather than a path."""
    return bool(_URL.match(str(root)))


class ArtifactError(SidlibError):
    """An artifact version is missing, incomplete, corrupted or incompatible with the data."""


@dataclass(frozen=True)
class Artifact:
    """One published version: its manifest, ``path`` (the local directory its files load from: in the
    store, or the verified download of a URL store's version) and ``location`` (where it is published)."""

    version: int
    path: Path
    manifest: dict[str, Any]
    location: str

    @property
    def signal(self) -> str:
        return str(self.manifest["signal"])

    @property
    def model_version(self) -> str:
        return str(self.manifest["model_version"])

    def load_quantizer(self) -> Quantizer:
        return serialize.load(self.path / QUANTIZER_DIR)


class ArtifactStore:
    """The versions under ``root``: a path (``local_root`` is then that directory) or an fsspec URL
    (``local_root`` is ``None``: locks and in-place loading need a local file system)."""

    def __init__(self, root: str | Path):
        import fsspec

        if _SCHEME_WITHOUT_HOST.match(str(root)):
            raise ArtifactError(f"artifacts.root {root!r}: a scheme needs '://' (an fsspec URL); for a Databricks "
                                f"Volume use its /Volumes/... path")
        if is_url(root):
            self.fs, self._root = fsspec.url_to_fs(str(root))
            check_exclusive_create(self.fs, str(root))
            self.root = str(root).rstrip("/")
            self.local_root: Path | None = None
        else:
            from fsspec.implementations.local import LocalFileSystem

            self.local_root = Path(root).resolve()
            self.fs, self._root, self.root = LocalFileSystem(), str(self.local_root), str(self.local_root)

    def version_path(self, version: int) -> Path:
        """The version's directory in a path store (:class:`ArtifactError` for a URL store)."""
        if self.local_root is None:
            raise ArtifactError(f"artifact store {self.root} is a URL: its versions have no local path")
        return self.local_root / _version_name(version)

    def _key(self, *parts: str) -> str:
        return "/".join((self._root.rstrip("/"), *parts))

    def location(self, *parts: str) -> str:
        """``root/parts...`` as users address it (the URL for a URL store)."""
        return "/".join((self.root, *parts))

    def lock_file(self, name: str) -> Path | None:
        """A lock file under ``root/.locks`` for :func:`sidlib.locks.exclusive`; ``None`` for a URL
        store, where no lock spans processes (its runs are then not serialized)."""
        return None if self.local_root is None else self.local_root / ".locks" / name

    def write_tree(self, local_dir: Path, *parts: str) -> dict[str, str]:
        """Publish the files of ``local_dir`` at ``root/parts...`` (copied for a URL store, which
        overwrites: for reports, not versions); returns each file's location by its local path."""
        placed = {}
        for file in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            relative = str(file.relative_to(local_dir))
            if self.local_root is None:
                self._put(file, self._key(*parts, relative))
            placed[str(file)] = self.location(*parts, relative)
        return placed

    def _put(self, local: Path, key: str) -> None:
        self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)  # a no-op on object stores
        self.fs.put_file(str(local), key)

    def _claimed(self) -> list[int]:
        """Every version directory under the root, complete or not (none when the root is missing: an
        object store has no empty prefix)."""
        try:
            names = self.fs.ls(self._root, detail=False)
        except FileNotFoundError:
            return []
        return [int(m[1]) for m in (_VERSION_DIR.match(Path(p).name) for p in names) if m]

    def versions(self) -> list[int]:
        """Complete versions (manifest present), ascending."""
        return sorted(v for v in self._claimed() if self.fs.exists(self._key(_version_name(v), MANIFEST)))

    def latest(self, signal: str | None = None) -> Artifact | None:
        for version in reversed(self.versions()):
            if signal is None or str(self._manifest(version)["signal"]) == signal:
                return self.get(version)
        return None

    def check_writable(self) -> None:
        """Raise :class:`ArtifactError` unless versions can be published under the root (created if
        missing): a fit calls this before it trains, not after."""
        if self.local_root is not None:
            check_writable_dir(self.local_root, "artifacts.root", ArtifactError)
            return
        probe = self._key(f".probe-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            self.fs.makedirs(self._root, exist_ok=True)
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
        except Exception as exc:  # each fsspec backend raises its own errors
            raise ArtifactError(f"artifacts.root {self.root} is not writable: {exc}") from None

    def publish(self, quantizer: Quantizer, manifest: dict[str, Any]) -> Artifact:
        """Write ``quantizer`` and ``manifest`` as the next free version and return it."""
        self.check_writable()
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.local_root))
        try:
            serialize.save(quantizer, staging / QUANTIZER_DIR)
            files = {str(p.relative_to(staging)): _sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()}
            version = self._claim_next_version()
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
            name = _version_name(version)
            if self.local_root is not None:
                target = self.local_root / name
                for item in staging.iterdir():
                    os.replace(item, target / item.name)
                _atomic_write_json(target / MANIFEST, full)
                return Artifact(version, target, full, str(target))
            for file in files:
                self._put(staging / file, self._key(name, file))
            self.fs.pipe_file(self._key(name, MANIFEST), _manifest_bytes(full))
            self._keep_in_cache(staging, version, full)  # what was uploaded need not come back down
            return self.get(version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _claim_next_version(self) -> int:
        version = max(self._claimed(), default=0) + 1
        while True:
            directory = self._key(_version_name(version))
            try:
                self.fs.makedirs(directory, exist_ok=True)
                with self.fs.open(f"{directory}/{CLAIM}", "xb") as claim:
                    claim.write(f"{os.getpid()} {datetime.now(timezone.utc).isoformat()}".encode())
                return version
            except FileExistsError:  # a concurrent fit claimed it first
                version += 1

    def _manifest(self, version: int) -> dict[str, Any]:
        key = self._key(_version_name(version), MANIFEST)
        try:
            raw = self.fs.cat_file(key)
        except FileNotFoundError:
            raise ArtifactError(f"artifact version {version} not found under {self.root}") from None
        return _read_manifest(raw, version)

    def get(self, version: int) -> Artifact:
        """The version, its files verified against the manifest's checksums (downloaded first from a
        URL store)."""
        manifest = self._manifest(version)
        name = _version_name(version)
        path = self.version_path(version) if self.local_root is not None else self._download(version, manifest)
        _verify_files(path, manifest["files"], version)
        return Artifact(version, path, manifest, self.location(name))

    def _cache_path(self, version: int, manifest: dict[str, Any]) -> Path:
        """Where the local copy of ``version`` (as ``manifest`` describes it) is kept."""
        digest = hashlib.sha256(f"{self.root}\n{_manifest_bytes(manifest).decode()}".encode()).hexdigest()[:20]
        return CACHE_DIR / digest / _version_name(version)

    def _keep_in_cache(self, files: Path, version: int, manifest: dict[str, Any]) -> None:
        """Make the directory ``files`` (a version's files as just published) its local copy."""
        cached = self._cache_path(version, manifest)
        if not cached.exists():  # the manifest (its creation time) makes the path unique to this publish
            cached.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(files), str(cached))

    def _download(self, version: int, manifest: dict[str, Any]) -> Path:
        """A local copy of the version's files, fetched once per process cache and then reused while
        its files still match the manifest."""
        cached = self._cache_path(version, manifest)
        if cached.is_dir():
            try:
                _verify_files(cached, manifest["files"], version)
                return cached
            except ArtifactError:
                shutil.rmtree(cached, ignore_errors=True)
        cached.parent.mkdir(parents=True, exist_ok=True)
        fetching = Path(tempfile.mkdtemp(prefix=".fetch-", dir=cached.parent))
        for file in manifest["files"]:
            if Path(file).is_absolute() or ".." in Path(file).parts:
                raise ArtifactError(f"artifact version {version}: file {file} is outside its version")
            (fetching / file).parent.mkdir(parents=True, exist_ok=True)
            try:
                self.fs.get_file(self._key(_version_name(version), file), str(fetching / file))
            except FileNotFoundError:
                shutil.rmtree(fetching, ignore_errors=True)
                raise ArtifactError(f"artifact version {version}: file {file} missing") from None
        try:
            os.replace(fetching, cached)
        except OSError:  # another process of this machine fetched it at the same time
            shutil.rmtree(fetching, ignore_errors=True)
        return cached


def check_exclusive_create(fs: Any, root: str) -> None:
    """Raise :class:`ArtifactError` unless ``fs`` is a backend (and release) whose exclusive create
    the version claim can rely on (:data:`EXCLUSIVE_CREATE`)."""
    from importlib.metadata import PackageNotFoundError, version

    protocols = [fs.protocol] if isinstance(fs.protocol, str) else list(fs.protocol)
    known = next((p for p in protocols if p in EXCLUSIVE_CREATE), None)
    if known is None:
        raise ArtifactError(f"artifacts.root {root}: the {protocols[0]!r} fsspec backend has no known exclusive "
                            f"create, so concurrent fits could claim one version; supported: "
                            f"{', '.join(sorted(EXCLUSIVE_CREATE))}")
    if EXCLUSIVE_CREATE[known] is None:
        return
    package, minimum = EXCLUSIVE_CREATE[known]
    try:
        installed = version(package)
    except PackageNotFoundError:
        installed = "0"
    if _release(installed) < _release(minimum):
        raise ArtifactError(f"artifacts.root {root}: {package} {installed} does not make open(..., 'xb') a "
                            f"conditional create; install {package}>={minimum}")


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _version_name(version: int) -> str:
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 10**6:
        raise ArtifactError(f"invalid artifact version {version!r}")
    return f"v{version:06d}"


def _read_manifest(raw: bytes, version: int) -> dict[str, Any]:
    """The parsed manifest, or :class:`ArtifactError` if it is not JSON or lacks what loading needs."""
    try:
        manifest = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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


def _manifest_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, indent=2, sort_keys=True, default=str).encode()


def _atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(_manifest_bytes(payload))
    os.replace(tmp, path)
