"""MLflow tracking of artifact versions and of the pointer, for teams that look for models in MLflow
(``mlflow.enabled``; the ``mlflow`` extra). Imported only when tracking is on.

* :meth:`Tracking.log_fit`: one run per fitted artifact version (params, the manifest's held-out
  metrics, the manifest and the bundle as run artifacts) and one registered model version of the
  signal's model, a ``pyfunc`` (:class:`SidQuantizerModel`) whose ``predict`` encodes embeddings.
  The model version is tagged with its ``sid_version``.
* :meth:`Tracking.move_alias`: point the signal's model alias at the model version of a SID version,
  after ``sid_pointer`` moved there. The pointer is the source of truth and alias writes are
  last-writer-wins, so a failed alias update is reported and logged, never raised over a switch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np

import sidlib
from sidlib.artifacts import MANIFEST, QUANTIZER_DIR, Artifact, ArtifactStore
from sidlib.config import MlflowConfig, TablesConfig

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: The model version tag that names the SID version (artifact version) a model version holds.
SID_VERSION_TAG = "sid_version"
#: Where the pyfunc keeps the quantizer bundle among its artifacts.
BUNDLE = "quantizer"


class SidQuantizerModel(mlflow.pyfunc.PythonModel):
    """A quantizer as an MLflow model: embeddings (a float matrix, or a frame of one array column or of
    one column per dimension) in, a frame of ``codes`` (one list per row) and packed ``sid`` out."""

    def load_context(self, context: Any) -> None:
        from sidlib.quantizers import serialize

        self.quantizer = serialize.load(Path(context.artifacts[BUNDLE]))

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> "pd.DataFrame":
        import pandas as pd

        from sidlib.sid import pack

        codes = self.quantizer.encode(embedding_matrix(model_input))
        return pd.DataFrame({"codes": list(codes.astype(np.int64)),
                             "sid": pack(codes, self.quantizer.cardinalities).astype(np.int64)})


def embedding_matrix(model_input: Any) -> np.ndarray:
    """``model_input`` as a float32 matrix ``[rows, dim]``."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] == 1 and model_input.dtypes.iloc[0] == object:
            return np.stack(model_input.iloc[:, 0].to_numpy()).astype(np.float32)
        return model_input.to_numpy(dtype=np.float32)
    return np.asarray(model_input, dtype=np.float32)


class Tracking:
    """The MLflow side of one job run (``cfg.mlflow`` with the tables' catalog names for model names)."""

    def __init__(self, cfg: MlflowConfig, tables: TablesConfig):
        self.cfg, self.tables = cfg, tables
        if cfg.tracking_uri:
            mlflow.set_tracking_uri(cfg.tracking_uri)
        if cfg.registry_uri:
            mlflow.set_registry_uri(cfg.registry_uri)

    def model_name(self, signal: str) -> str:
        return self.cfg.model_name.format(signal=signal, catalog=self.tables.catalog or "",
                                          database=self.tables.database or "")

    def log_fit(self, store: ArtifactStore, version: int) -> dict[str, Any]:
        """Log version ``version``'s run and register its model version; returns where they are (or
        the error: nothing here may fail the job whose step already happened)."""
        name = None
        try:
            artifact = store.get(version)
            name = self.model_name(artifact.signal)
            mlflow.set_experiment(self.cfg.experiment)
            with mlflow.start_run(run_name=f"{artifact.signal} v{artifact.version}") as run:
                mlflow.log_params(run_params(artifact))
                mlflow.log_metrics(run_metrics(artifact.manifest))
                mlflow.log_dict(artifact.manifest, MANIFEST)
                mlflow.log_artifacts(str(artifact.path / QUANTIZER_DIR), artifact_path=QUANTIZER_DIR)
                model = mlflow.pyfunc.log_model(
                    name="sid_quantizer", python_model=SidQuantizerModel(),
                    artifacts={BUNDLE: str(artifact.path / QUANTIZER_DIR)},
                    code_paths=[str(Path(sidlib.__file__).parent)],
                    signature=_signature(artifact), registered_model_name=name,
                    pip_requirements=["torch", "numpy", "pandas", "pyyaml"])
            registered = str(model.registered_model_version)
            mlflow.MlflowClient().set_model_version_tag(name, registered, SID_VERSION_TAG, str(artifact.version))
        except Exception as exc:  # the artifact is published whatever MLflow does
            log.warning("MLflow: could not log artifact v%d: %s", version, exc)
            return {"model": name, "error": f"{type(exc).__name__}: {exc}"[:500]}
        log.info("MLflow: run %s, model %s version %s for SID v%d", run.info.run_id, name, registered, version)
        return {"run_id": run.info.run_id, "model": name, "model_version": registered}

    def move_alias(self, signal: str, sid_version: int) -> dict[str, Any]:
        """Point the signal's model alias at the model version holding ``sid_version``."""
        name, alias = self.model_name(signal), self.cfg.alias
        try:
            client = mlflow.MlflowClient()
            # Unity Catalog's search results carry no tags: read each version's own
            versions = [v.version for v in client.search_model_versions(f"name = '{name}'")
                        if client.get_model_version(name, str(v.version)).tags.get(SID_VERSION_TAG) == str(sid_version)]
            if not versions:
                return {"model": name, "alias": alias, "error": f"no model version of SID v{sid_version} "
                                                                f"(fitted with mlflow.enabled=false?)"}
            version = str(max(versions, key=int))
            client.set_registered_model_alias(name, alias, version)
        except Exception as exc:  # the pointer moved: report, do not undo or hide it
            log.warning("MLflow: could not move alias %s of %s to SID v%d: %s", alias, name, sid_version, exc)
            return {"model": name, "alias": alias, "error": f"{type(exc).__name__}: {exc}"[:500]}
        log.info("MLflow: %s@%s -> version %s (SID v%d)", name, alias, version, sid_version)
        return {"model": name, "alias": alias, "model_version": version}


def run_metrics(manifest: dict[str, Any]) -> dict[str, float]:
    """The manifest's held-out metrics under MLflow-legal names (``recall@20`` -> ``recall_at_20``)."""
    return {key.replace("@", "_at_"): float(value) for key, value in manifest.get("metrics", {}).items()}


def run_params(artifact: Artifact) -> dict[str, Any]:
    """The run's params: what was fitted, on which data, with which layout and seed."""
    manifest = artifact.manifest
    fit, source = manifest.get("fit", {}), manifest.get("source", {})
    params = {"signal": artifact.signal, "sid_version": artifact.version, "model_version": artifact.model_version,
              "quantizer": manifest.get("quantizer"), "bits": manifest.get("bits"),
              "cardinalities": ",".join(str(c) for c in manifest["cardinalities"]), "seed": fit.get("seed"),
              "source_table": source.get("table"), "source_version": source.get("version"),
              "warm_start_from": manifest.get("warm_start_from"), "artifact": artifact.location}
    params.update({f"param.{k}": v for k, v in sorted(fit.get("params", {}).items())})
    return {k: v for k, v in params.items() if v is not None}


def _signature(artifact: Artifact) -> Any:
    import pandas as pd
    from mlflow.models import infer_signature

    example = np.zeros((1, int(artifact.manifest["dim"])), dtype=np.float32)
    codes = [np.zeros(len(artifact.manifest["cardinalities"]), dtype=np.int64)]
    return infer_signature(example, pd.DataFrame({"codes": codes, "sid": np.zeros(1, dtype=np.int64)}))
