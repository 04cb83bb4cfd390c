"""sidlib: Semantic IDs for ads and recommendation ranking.

Quantizers (``sidlib.quantizers``), SID/SIDE codecs (``sidlib.sid``) and metrics (``sidlib.metrics``)
need only torch and numpy. Everything that touches Spark lives in ``sidlib.spark`` and is imported
lazily by the jobs.
"""

__version__ = "0.1.0"
