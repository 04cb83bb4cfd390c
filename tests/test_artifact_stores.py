"""Artifact roots beyond a local path: an fsspec URL (``file://``; ``memory://`` as a store with no
local files at all) and a directory standing in for a Databricks Volume mount. Versions are claimed
by exclusive create, manifests are written last, and bundles load verified."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from sidlib.artifacts import CLAIM, MANIFEST, ArtifactError, ArtifactStore, is_url
from sidlib.quantizers import build

from conftest import REPO_ROOT

HELPER = REPO_ROOT / "tests" / "helpers" / "artifact_claims.py"


def _root(kind: str, tmp_path: Path) -> str:
    if kind == "file_url":
        return (tmp_path / "store").as_uri()
    if kind == "memory_url":
        return f"memory://sidlib-test-{uuid.uuid4().hex}/artifacts"
    return str(tmp_path / "Volumes" / "main" / "ads" / "artifacts" / "sidlib")  # a Volume's mount point


def _fitted(seed: int = 0):  # type: ignore[no-untyped-def]
    x = np.random.default_rng(seed).standard_normal((256, 16)).astype(np.float32)
    return build("rq_kmeans", 16, 8), x


@pytest.mark.parametrize("kind", ["file_url", "memory_url", "volume_path"])
def test_publish_get_and_load_on_each_kind_of_root(kind: str, tmp_path: Path) -> None:
    root = _root(kind, tmp_path)
    store = ArtifactStore(root)
    assert is_url(root) == (kind != "volume_path") and (store.local_root is None) == (kind != "volume_path")
    assert store.versions() == [] and store.latest("text") is None
    quantizer, x = _fitted()
    quantizer.fit(x)
    first = store.publish(quantizer, {"signal": "text", "model_version": "m1"})
    second = store.publish(quantizer, {"signal": "credits", "model_version": "m1"})
    assert (first.version, second.version) == (1, 2) and store.versions() == [1, 2]
    assert first.location == f"{root.rstrip('/')}/v000001"
    loaded = store.get(1)
    assert loaded.manifest["files"] == first.manifest["files"] and store.latest("text").version == 1
    np.testing.assert_array_equal(loaded.load_quantizer().encode(x), quantizer.encode(x))
    assert store.fs.exists(f"{store._key('v000001')}/{CLAIM}")


@pytest.mark.parametrize("kind", ["file_url", "memory_url"])
def test_a_url_store_checks_the_files_it_downloads(kind: str, tmp_path: Path) -> None:
    store = ArtifactStore(_root(kind, tmp_path))
    quantizer, x = _fitted()
    quantizer.fit(x)
    store.publish(quantizer, {"signal": "text", "model_version": "m1"})
    weights = store._key("v000001", "quantizer", "weights.pt")
    cached = store.get(1).path / "quantizer" / "weights.pt"  # downloaded and verified
    store.fs.pipe_file(weights, b"tampered")
    assert store.get(1).path == cached.parents[1]  # the verified copy is reused
    cached.write_bytes(b"damaged")
    with pytest.raises(ArtifactError, match="checksum mismatch for quantizer/weights.pt"):
        store.get(1)  # a damaged copy is fetched again, and the tampered file is refused
    store.fs.rm_file(weights)
    with pytest.raises(ArtifactError, match="file quantizer/weights.pt missing"):
        store.get(1)


def test_a_version_without_its_manifest_stays_invisible(tmp_path: Path) -> None:
    store = ArtifactStore(_root("file_url", tmp_path))
    quantizer, x = _fitted()
    quantizer.fit(x)
    store.publish(quantizer, {"signal": "text", "model_version": "m1"})
    store.fs.rm_file(store._key("v000001", MANIFEST))  # as a fit killed before its last write leaves it
    assert store.versions() == [] and store.latest() is None
    with pytest.raises(ArtifactError, match="artifact version 1 not found"):
        store.get(1)
    assert store.publish(quantizer, {"signal": "text", "model_version": "m1"}).version == 2  # v1 stays claimed


@pytest.mark.parametrize("kind", ["file_url", "volume_path"])
def test_concurrent_publishers_in_two_processes_never_share_a_version(kind: str, tmp_path: Path) -> None:
    root, count = _root(kind, tmp_path), 6
    go = tmp_path / "go"
    readies = [tmp_path / f"ready{i}" for i in range(2)]
    children = [subprocess.Popen([sys.executable, str(HELPER), root, str(count), str(r), str(go)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
                for r in readies]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in readies):
        assert time.monotonic() < deadline and all(c.poll() is None for c in children), "a child did not start"
        time.sleep(0.01)
    go.touch()
    outs = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0, 0], [err[-2000:] for _, err in outs]
    published = [json.loads(out) for out, _ in outs]
    everything = sorted(v for versions in published for v in versions)
    assert everything == list(range(1, 2 * count + 1)), published
    store = ArtifactStore(root)
    assert store.versions() == everything
    assert all(store.get(v).manifest["version"] == v for v in everything)


def test_pipeline_runs_with_artifacts_on_a_file_url(pipeline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """refresh fits, publishes, encodes (the encode UDF loads the bundle from the URL) and reports."""
    from sidlib.jobs import refresh
    from sidlib.spark import pointer

    cfg, tables = pipeline
    cfg.artifacts.root = (tmp_path / "url_store").as_uri()
    (result,) = refresh.run(cfg, tables).signals
    assert result.action == "refit" and pointer.current(tables, "text").sid_version == result.sid_version
    assert result.report["markdown"] == f"{cfg.artifacts.root}/reports/v{result.sid_version:06d}/report.md"
    assert (tmp_path / "url_store" / "reports" / f"v{result.sid_version:06d}" / "report.md").is_file()
    assert tables.read("item_sids").frame.count() == 120
    again = refresh.run(cfg, tables).signals[0]
    assert again.action == "incremental" and again.sid_version == result.sid_version


def test_roots_whose_claim_cannot_be_exclusive_are_refused(tmp_path: Path) -> None:
    import zipfile

    from sidlib.artifacts import check_exclusive_create

    archive = tmp_path / "store.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("artifacts/readme.txt", "a read-only archive")
    with pytest.raises(ArtifactError, match="'zip' fsspec backend has no known exclusive create"):
        ArtifactStore(f"zip://artifacts::{archive.as_uri()}")
    with pytest.raises(ArtifactError, match="a scheme needs '://'"):
        ArtifactStore("dbfs:/Volumes/main/ads/artifacts")

    class OldS3:  # the protocol s3fs registers; the installed release decides
        protocol = ("s3", "s3a")

    with pytest.raises(ArtifactError, match=r"install s3fs>=2025.7.0"):
        check_exclusive_create(OldS3(), "s3://bucket/artifacts")  # s3fs is not installed here


def test_a_root_with_glob_characters_lists_its_versions(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "run[1]" / "artifacts")
    quantizer, x = _fitted()
    quantizer.fit(x)
    store.publish(quantizer, {"signal": "text", "model_version": "m1"})
    assert store.versions() == [1] and store.latest("text").version == 1
