"""Job entry point; see `sidlib.jobs.sequences` for what it does.

    python jobs/build_sequences.py --conf conf/demo.yaml [sequences.history_length=50 ...]
    spark-submit jobs/build_sequences.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.cli import main
from sidlib.jobs import sequences

if __name__ == "__main__":
    sys.exit(main(sequences.run, description=sequences.__doc__))
