"""Job entry point; see `sidlib.jobs.export` for what it does.

    python jobs/export_training_data.py --conf conf/demo.yaml [export.valid_fraction=0.1 ...]
    spark-submit jobs/export_training_data.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.cli import main
from sidlib.jobs import export

if __name__ == "__main__":
    sys.exit(main(export.run, description=export.__doc__))
