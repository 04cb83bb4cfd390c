"""Job entry point; see `sidlib.jobs.evaluate` for what it does.

    python jobs/evaluate_ranker.py --conf conf/demo.yaml [key=value ...]
    spark-submit jobs/evaluate_ranker.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.cli import main
from sidlib.jobs import evaluate

if __name__ == "__main__":
    sys.exit(main(evaluate.run, description=evaluate.__doc__))
