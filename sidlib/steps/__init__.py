"""Typed steps: the units the jobs, ``refresh``, ``sweep`` and the notebooks compose.

Each step takes explicit arguments (tables, an artifact store, the config sections it needs) and
returns a frozen :class:`~sidlib.results.Result`; a job's ``run`` only maps its config onto a step.
Steps build no Spark plans themselves: those live in :mod:`sidlib.spark` (``tests/test_architecture.py``
holds the rule)."""
