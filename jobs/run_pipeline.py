"""Job entry point; see `sidlib.jobs.pipeline` for what it does.

    python jobs/run_pipeline.py --conf conf/demo.yaml [key=value ...]
"""

import sys

from sidlib.cli import main
from sidlib.jobs import pipeline

if __name__ == "__main__":
    sys.exit(main(pipeline.run, description=pipeline.__doc__))
