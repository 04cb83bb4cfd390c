"""Child process of the artifact-store race test: wait for the go, then publish COUNT small bundles.

    python artifact_claims.py ROOT COUNT READY_FILE GO_FILE

Prints the versions it published as JSON."""

import json
import sys

import numpy as np

from sidlib.artifacts import ArtifactStore
from sidlib.quantizers import build

from go_signal import ready_then_wait

root, count, ready, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
quantizer = build("kmeans", 8, 4)
quantizer.fit(np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32))
store = ArtifactStore(root)
ready_then_wait(ready, go, timeout_s=60, poll_s=0.005)
published = [store.publish(quantizer, {"signal": "text", "model_version": "m1"}).version for _ in range(count)]
print(json.dumps(published))
