"""`python -m skaha_operator.simulator`: run the simulator in the foreground."""

import sys

from skaha_operator.simulator.cli import main

sys.exit(main())
