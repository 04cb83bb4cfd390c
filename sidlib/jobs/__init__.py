"""Job bodies: ``run(cfg, tables) -> summary`` functions that ``jobs/*.py``, the console scripts and
the notebooks all call. Each returns a JSON-serialisable summary of what it read, wrote and how long
it took."""
