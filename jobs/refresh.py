"""Job entry point; see `sidlib.jobs.refresh` for what it does.

    python jobs/refresh.py --conf conf/demo.yaml [key=value ...]
    spark-submit jobs/refresh.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.cli import main
from sidlib.jobs import refresh

if __name__ == "__main__":
    sys.exit(main(refresh.run, description=refresh.__doc__))
