"""Data sources: the real demo data that installs offline (MovieLens-1M, Wikidata movie texts, MiniLM
embeddings) and deterministic synthetic data for tests and scale benchmarks."""
