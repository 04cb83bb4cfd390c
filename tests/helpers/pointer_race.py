"""Child process of the pointer race tests: wait until a shared start time, then try one switch.

    python pointer_race.py TABLES_ROOT SIGNAL VERSION EXPECTED|none START_AT

Prints ``won`` or ``lost_race``; anything else (a traceback) fails the test."""

import sys
import time

from sidlib.config import TablesConfig
from sidlib.spark import pointer
from sidlib.spark.tables import Tables

root, signal, version, expected, start_at = sys.argv[1:]
tables = Tables(spark=None, cfg=TablesConfig(root=root))  # type: ignore[arg-type]  # path pointers need no engine
time.sleep(max(0.0, float(start_at) - time.time()))
try:
    pointer.switch(tables, signal, int(version), "m", expected=None if expected == "none" else int(expected))
    print("won")
except pointer.PointerConflict:
    print("lost_race")
