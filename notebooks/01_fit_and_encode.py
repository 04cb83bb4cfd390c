# Databricks notebook source
# MAGIC %md
# MAGIC # Fit a quantizer and encode Semantic IDs
# MAGIC Fits the configured quantizer on `content_embeddings` (pinned version), publishes a versioned artifact,
# MAGIC encodes every item into `item_sids` and points the signal's current SID version at it.
# MAGIC Runs on Databricks (the notebook's session) or locally: `python notebooks/01_fit_and_encode.py`.

# COMMAND ----------

import json

from sidlib.jobs import encode_items, fit_quantizer, inspect_tables
from sidlib.notebook import open_pipeline
from sidlib.spark import pointer

cfg, tables = open_pipeline()
print(json.dumps(inspect_tables.run(cfg, tables)["tables"], indent=2))

# COMMAND ----------

# MAGIC %md ## Fit (EM quantizers distributed over the executors; neural ones one task per signal)

# COMMAND ----------

fitted = fit_quantizer.run(cfg, tables)
for artifact in fitted["artifacts"]:
    print(f"v{artifact['version']} {artifact['signal']}: held-out cosine loss {artifact['metrics']['cosine_loss']:.4f}, "
          f"unique SIDs {artifact['metrics']['unique_sid_rate']:.3f}")

# COMMAND ----------

# MAGIC %md ## Encode and switch the current version

# COMMAND ----------

for artifact in fitted["artifacts"]:
    store_version = artifact["version"]
    cfg.encode.signal, cfg.encode.sid_version = artifact["signal"], store_version
    summary = encode_items.run(cfg, tables)
    current = pointer.current(tables, artifact["signal"])
    pointer.switch(tables, artifact["signal"], store_version, artifact["model_version"],
                   expected=current.sid_version if current else None)
    print(f"{artifact['signal']}: {summary['items_in_version']} items encoded with v{store_version}")

# COMMAND ----------

tables.read("item_sids").frame.where(f"sid_version = {cfg.encode.sid_version}").show(5, truncate=False)
