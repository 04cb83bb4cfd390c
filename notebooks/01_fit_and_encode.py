# Databricks notebook source
# MAGIC %md
# MAGIC # Fit a quantizer and encode Semantic IDs
# MAGIC Fits the configured quantizer on `content_embeddings` (pinned version), publishes a versioned artifact,
# MAGIC encodes every item into `item_sids` and points the signal's current SID version at it.
# MAGIC Runs on Databricks (the notebook's session) or locally: `python notebooks/01_fit_and_encode.py`.

# COMMAND ----------

import json

from sidlib.artifacts import ArtifactStore
from sidlib.jobs import inspect_tables
from sidlib.notebook import open_pipeline
from sidlib.spark import pointer
from sidlib.spark.tables import sid_version_is
from sidlib.steps.encode import encode_version
from sidlib.steps.fit import fit_artifacts
from sidlib.steps.switch import switch_pointer

cfg, tables = open_pipeline()
store = ArtifactStore(cfg.artifacts.root)
print(json.dumps(inspect_tables.run(cfg, tables)["tables"], indent=2))

# COMMAND ----------

# MAGIC %md ## Fit (EM quantizers distributed over the executors; neural ones one task per signal)

# COMMAND ----------

fitted = fit_artifacts(tables, store, cfg.fit, cfg.data_quality)
for artifact in fitted.artifacts:
    print(f"v{artifact.version} {artifact.signal}: held-out cosine loss {artifact.metrics['cosine_loss']:.4f}, "
          f"unique SIDs {artifact.metrics['unique_sid_rate']:.3f}")

# COMMAND ----------

# MAGIC %md ## Encode and switch the current version

# COMMAND ----------

for artifact in fitted.artifacts:
    encoded = encode_version(tables, store, artifact.artifact, "full", quality=cfg.data_quality,
                             lock_wait_s=cfg.encode.lock_wait_s)
    current = pointer.current(tables, artifact.signal)
    action = switch_pointer(tables, artifact.signal, artifact.version, artifact.model_version,
                            expected=current.sid_version if current else None)
    print(f"{artifact.signal}: {encoded.items_in_version} items encoded with v{artifact.version} ({action})")

# COMMAND ----------

tables.read("item_sids").frame.where(sid_version_is(fitted.artifacts[-1].version)).show(5, truncate=False)
