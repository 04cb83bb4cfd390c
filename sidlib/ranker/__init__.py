"""The ranker that consumes SIDs: a small two-task (click, conv) model whose item representation is
selectable (item id only, SID prefix n-grams, SIDE codes, raw content embeddings), its trainer, and
the offline metrics the evaluation job reports. Everything here is torch/numpy only (no Spark)."""

from sidlib.ranker.features import ItemEncoder, Variant
from sidlib.ranker.model import Ranker
from sidlib.ranker.train import RankerSettings, fit, load_split, predict

__all__ = ["ItemEncoder", "Ranker", "RankerSettings", "Variant", "fit", "load_split", "predict"]
