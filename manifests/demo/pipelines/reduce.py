"""The demo's stand-in reduction, run by the headless Session `reduction` (headless.yaml).

The demo writes it to /arc/home/alice/pipelines/ in the simulator's Cavern tree; where the
simulator runs headless sessions as containers, it really runs there: it says what it reduces,
works for SIM_RUN_SECONDS (600 in headless.yaml), then completes.
"""

import os
import sys
import time

print("reducing", " ".join(sys.argv[1:]), "with", os.environ.get("OMP_NUM_THREADS"), "threads")
print("session", os.environ.get("skaha_sessionid"), "home", os.environ.get("HOME"), flush=True)
time.sleep(float(os.environ.get("SIM_RUN_SECONDS", "60")))
print("reduced", flush=True)
