"""Everything in sidlib that touches Spark: sessions, tables, UDFs and the job bodies' Spark parts.
Importing this package does not import pyspark; its modules do so lazily where they need it."""
