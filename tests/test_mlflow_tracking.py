"""MLflow tracking against a real local tracking store (sqlite): runs and model versions of fitted
artifacts, the registered pyfunc, and the alias following refresh and rollback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from sidlib.artifacts import ArtifactStore
from sidlib.jobs import fit_quantizer, refresh, rollback
from sidlib.spark import pointer
from sidlib.tracking import run_metrics

from conftest import REPO_ROOT




@pytest.fixture
def tracked(pipeline, tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    cfg.mlflow.enabled = True
    cfg.mlflow.tracking_uri = cfg.mlflow.registry_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg.mlflow.experiment = "sidlib-test"
    # run artifacts beside the store, not in MLflow's default ./mlruns of the working directory
    _client(cfg).create_experiment(cfg.mlflow.experiment, artifact_location=(tmp_path / "mlruns").as_uri())
    return cfg, tables


def _client(cfg):  # type: ignore[no-untyped-def]
    return mlflow.MlflowClient(tracking_uri=cfg.mlflow.tracking_uri, registry_uri=cfg.mlflow.registry_uri)


def _text_embeddings(tables) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    rows = tables.read("content_embeddings").frame.where("signal = 'text'").toPandas().sort_values("item_id")
    return rows["item_id"].to_numpy(), np.stack(rows["embedding"].to_numpy()).astype(np.float32)


def test_refresh_logs_the_fit_and_the_alias_follows_refresh_and_rollback(tracked) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = tracked
    first = refresh.run(cfg, tables)
    (result,) = first.signals
    (run,) = first.mlflow["runs"]
    store, client = ArtifactStore(cfg.artifacts.root), _client(cfg)
    manifest = store.get(result.sid_version).manifest

    logged = client.get_run(run["run_id"])
    assert logged.data.metrics == pytest.approx(run_metrics(manifest)) and "cosine_loss" in logged.data.metrics
    assert logged.data.metrics["recon_recall_at_20"] == manifest["metrics"]["recon_recall@20"]
    assert logged.data.params["source_table"] == "content_embeddings"
    assert logged.data.params["source_version"] == str(manifest["source"]["version"])
    assert logged.data.params["quantizer"] == "rq_kmeans" and logged.data.params["seed"] == "0"
    assert logged.data.params["cardinalities"] == "16,16,16"
    names = {a.path for a in client.list_artifacts(run["run_id"])}
    assert {"manifest.json", "quantizer"} <= names
    assert client.get_model_version("sidlib_text", run["model_version"]).run_id == run["run_id"]
    assert first.mlflow["aliases"] == [{"signal": "text", "sid_version": result.sid_version, "model": "sidlib_text",
                                        "alias": "champion", "model_version": run["model_version"]}]
    assert str(client.get_model_version_by_alias("sidlib_text", "champion").version) == run["model_version"]

    # the registered pyfunc encodes like the artifact, and like the SIDs the refresh wrote
    model = mlflow.pyfunc.load_model("models:/sidlib_text@champion")
    ids, x = _text_embeddings(tables)
    predicted = model.predict(x)
    quantizer = store.get(result.sid_version).load_quantizer()
    np.testing.assert_array_equal(np.stack(predicted["codes"].to_numpy()), quantizer.encode(x))
    written = tables.read("item_sids").frame.toPandas().set_index("item_id").loc[ids]
    np.testing.assert_array_equal(predicted["sid"].to_numpy(), written["sid"].to_numpy())

    cfg.refresh.refit = True
    second = refresh.run(cfg, tables)
    cfg.refresh.refit = False
    newer = second.mlflow["runs"][0]["model_version"]
    assert second.signals[0].action == "refit" and newer != run["model_version"]
    assert str(client.get_model_version_by_alias("sidlib_text", "champion").version) == newer

    cfg.rollback.signal = "text"
    back = rollback.run(cfg, tables)
    assert back.to_version == result.sid_version and back.mlflow["model_version"] == run["model_version"]
    assert str(client.get_model_version_by_alias("sidlib_text", "champion").version) == run["model_version"]


def test_fit_quantizer_logs_a_run_per_artifact_and_moves_no_alias(tracked) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = tracked
    cfg.fit.signals = ["text", "credits"]
    outcome = fit_quantizer.run(cfg, tables)
    assert [m["sid_version"] for m in outcome.mlflow] == [a.version for a in outcome.artifacts]
    client = _client(cfg)
    for logged, artifact in zip(outcome.mlflow, outcome.artifacts):
        version = client.get_model_version(f"sidlib_{artifact.signal}", logged["model_version"])
        assert version.tags["sid_version"] == str(artifact.version)
        assert client.get_run(logged["run_id"]).data.metrics == pytest.approx(run_metrics(artifact.artifact.manifest))
        assert not client.get_registered_model(f"sidlib_{artifact.signal}").aliases


def test_a_failed_alias_update_is_reported_and_the_switch_stands(tracked, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = tracked
    first = refresh.run(cfg, tables).signals[0]
    cfg.refresh.refit = True
    refresh.run(cfg, tables)
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 100)  # a damaged registry store
    cfg.mlflow.registry_uri = f"sqlite:///{broken}"
    cfg.rollback.signal = "text"
    back = rollback.run(cfg, tables)
    assert back.action == "rolled_back" and pointer.current(tables, "text").sid_version == first.sid_version
    assert back.mlflow["alias"] == "champion" and "no model version" not in back.mlflow["error"], back.mlflow


def test_without_tracking_no_job_imports_mlflow() -> None:
    code = ("import sys\n"
            "from sidlib.config import load_config\n"
            "from sidlib.jobs import fit_quantizer, refresh, rollback\n"
            "from sidlib.steps.track import log_fits, move_aliases, tracking_for\n"
            "cfg = load_config(None)\n"
            "tracker = tracking_for(cfg)\n"
            "assert tracker is None and log_fits(tracker, None, [1]) is None and move_aliases(tracker, {'text': 1}) is None\n"
            "assert 'mlflow' not in sys.modules, 'mlflow imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_tracking_with_artifacts_on_a_url_root(tracked, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The bundle comes from the store's download cache, the manifest from the store itself."""
    cfg, tables = tracked
    cfg.artifacts.root = (tmp_path / "url_store").as_uri()
    summary = refresh.run(cfg, tables)
    (run,) = summary.mlflow["runs"]
    assert "error" not in run and summary.mlflow["aliases"][0]["model_version"] == run["model_version"]
    client = _client(cfg)
    assert {a.path for a in client.list_artifacts(run["run_id"])} >= {"manifest.json", "quantizer"}
    ids, x = _text_embeddings(tables)
    predicted = mlflow.pyfunc.load_model("models:/sidlib_text@champion").predict(x[:10])
    quantizer = ArtifactStore(cfg.artifacts.root).get(summary.signals[0].sid_version).load_quantizer()
    np.testing.assert_array_equal(np.stack(predicted["codes"].to_numpy()), quantizer.encode(x[:10]))
