"""Job entry point; see `sidlib.jobs.ingest` for what it does.

    python jobs/ingest_demo_data.py --conf conf/demo.yaml [key=value ...]
    spark-submit jobs/ingest_demo_data.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.cli import main
from sidlib.jobs import ingest

if __name__ == "__main__":
    sys.exit(main(ingest.run, description=ingest.__doc__))
