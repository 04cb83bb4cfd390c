# Databricks notebook source
# MAGIC %md
# MAGIC # Point-in-time user histories with Semantic IDs
# MAGIC Builds the user histories (`sequences.layout`: `compact` stores each user's events once and one
# MAGIC row per impression pointing into them; `materialized` stores every impression's last N events in
# MAGIC its row) and the ranker's training table (plus a time-based split), then reads a few training
# MAGIC batches through Petastorm into torch, histories of `sequences.history_length` events.
# MAGIC Runs on Databricks or locally: `python notebooks/02_sequences.py`.

# COMMAND ----------

from sidlib.jobs import build_sequences, export_training_data
from sidlib.notebook import open_pipeline
from sidlib.reader import dataloader_from_config

cfg, tables = open_pipeline(dbutils=globals().get("dbutils"))
built = build_sequences.run(cfg, tables)
print(f"{built['layout']} layout: " + ", ".join(f"{t} {w['rows']} rows" for t, w in built["written"].items())
      + f"; SIDs of {built['signal']} v{built['sid_version']}")

# COMMAND ----------

# MAGIC %md ## Export with a time-based split, then read it back through Petastorm

# COMMAND ----------

exported = export_training_data.run(cfg, tables)
print("rows per split:", exported["splits"], "boundaries:", exported["boundaries"])
loader = dataloader_from_config(cfg, split="train", batch_size=256)
for i, batch in enumerate(loader):
    print({name: tuple(t.shape) for name, t in batch.items()})
    if i == 2:
        break

# COMMAND ----------

# MAGIC %md ## The longest history in that batch: events strictly before the impression, most recent last

# COMMAND ----------

row = int(batch["hist_len"].argmax())
mask = batch["hist_mask"][row]
print(f"user {int(batch['user_id'][row])}: impression of item {int(batch['item_id'][row])} at ts "
      f"{int(batch['ts'][row])}, {int(batch['hist_len'][row])} history events")
print("last 5 history items:", batch["hist_item_ids"][row, -5:].tolist(), "at", batch["hist_ts"][row, -5:].tolist(),
      "SIDs", batch["hist_sids"][row, -5:].tolist())
assert int(batch["hist_ts"][row][mask].max()) < int(batch["ts"][row])
